//! The accounts summed into their groups: all accounts, the clusters (the customer track only
//! when it holds accounts), the five tiers, the
//! `[[segments]]` and the Future Pipeline micro-segments. The caller says how each account was
//! assessed (from the files, `abm analyze DIR`; or as a recorded run left it, `abm analyze` on
//! the store); the sums are the same either way. Parallel: one [`Fold`] per worker, merged
//! (the result does not depend on the split).

use crate::analysis::{Group, GroupKind};
use crate::crosssell::Products;
use crate::perf::{AccountDeals, GroupAcc, Period, Touch};
use abm_core::segments::{SegmentDef, SegmentSet};
use abm_core::{AccountIdx, AccountRef, AccountSchema, Cluster, Deal, Tier};
use std::collections::BTreeMap;

/// Fixed groups: all accounts, the clusters, the five tiers, then the user's segments.
const CLUSTERS_AT: usize = 1;
const TIERS_AT: usize = CLUSTERS_AT + Cluster::COUNT;
const SEGMENTS_AT: usize = TIERS_AT + 5;

/// One account as assessed, with its deals (and events, for the buying pattern).
pub struct Assessed<'a> {
    pub idx: AccountIdx,
    pub account: AccountRef<'a>,
    pub cluster: Cluster,
    pub tier: Tier,
    pub score: f64,
    /// The Future Pipeline micro-segment (empty: none).
    pub micro: &'a str,
    pub deals: &'a [Deal],
    /// `None`: no engagement data.
    pub touches: Option<&'a [Touch]>,
}

/// One worker's totals.
pub struct Fold {
    fixed: Vec<GroupAcc>,
    micro: BTreeMap<String, GroupAcc>,
    /// (products held, ICP score, account) of the accounts holding any.
    pub holders: Vec<(u64, f64, AccountIdx)>,
    segments: SegmentSet,
    deals: AccountDeals,
    buying_window_days: u32,
}

impl Fold {
    pub fn new(defs: &[SegmentDef], schema: &AccountSchema, buying_window_days: u32) -> Fold {
        Fold {
            fixed: vec![GroupAcc::default(); SEGMENTS_AT + defs.len()],
            micro: BTreeMap::new(),
            holders: Vec::new(),
            segments: SegmentSet::new(defs, schema),
            deals: AccountDeals::default(),
            buying_window_days,
        }
    }

    /// Add one account to every group it belongs to.
    pub fn add(&mut self, a: &Assessed<'_>, period: &Period, products: &Products) {
        let deals = &mut self.deals;
        deals.read(a.deals, period);
        if let Some(t) = a.touches {
            deals.read_touches(a.deals, t, period, self.buying_window_days);
        }
        let held = products.held(a.deals, period);
        if held != 0 {
            self.holders.push((held, a.score, a.idx));
        }
        let (idx, score) = (a.idx, a.score);
        self.fixed[0].add(deals, idx, score);
        self.fixed[CLUSTERS_AT + a.cluster.index()].add(deals, idx, score);
        self.fixed[TIERS_AT + a.tier.index()].add(deals, idx, score);
        let fixed = &mut self.fixed;
        self.segments.each_match(&a.account, |i| {
            fixed[SEGMENTS_AT + i].add(deals, idx, score)
        });
        if a.cluster == Cluster::FuturePipeline && !a.micro.is_empty() {
            match self.micro.get_mut(a.micro) {
                Some(g) => g.add(deals, idx, score),
                None => {
                    let mut g = GroupAcc::default();
                    g.add(deals, idx, score);
                    self.micro.insert(a.micro.to_string(), g);
                }
            }
        }
    }

    /// Fold another worker's totals in.
    pub fn merge(&mut self, other: Fold) {
        self.holders.extend(other.holders);
        for (a, b) in self.fixed.iter_mut().zip(&other.fixed) {
            a.merge(b);
        }
        for (k, g) in other.micro {
            match self.micro.get_mut(&k) {
                Some(t) => t.merge(&g),
                None => {
                    self.micro.insert(k, g);
                }
            }
        }
    }

    /// The groups in report order: all, clusters, tiers, the user's segments (named by
    /// `defs`, with their stored versions when known), micro-segments.
    pub fn groups(self, defs: &[SegmentDef], versions: Option<&[i64]>) -> Vec<Group> {
        let mut fixed = self.fixed.into_iter();
        let mut next = || fixed.next().expect("every fixed group");
        let mut out = vec![Group {
            name: "all".into(),
            kind: GroupKind::All,
            description: "all accounts".into(),
            version: None,
            acc: next(),
        }];
        for c in Cluster::ALL {
            let acc = next();
            if c == Cluster::Customer && acc.accounts == 0 {
                continue;
            }
            out.push(Group {
                name: c.as_str().into(),
                kind: GroupKind::Cluster,
                description: format!("cluster {}", c.label()),
                version: None,
                acc,
            });
        }
        for t in Tier::ALL {
            out.push(Group {
                name: t.as_str().into(),
                kind: GroupKind::Tier,
                description: format!("ICP tier {}", t.as_str()),
                version: None,
                acc: next(),
            });
        }
        for (i, s) in defs.iter().enumerate() {
            out.push(Group {
                name: s.name.clone(),
                kind: GroupKind::Segment,
                description: s.description.clone(),
                version: versions.and_then(|v| v.get(i).copied()),
                acc: next(),
            });
        }
        for (k, acc) in self.micro {
            out.push(Group {
                description: format!("Future Pipeline micro-segment {k}"),
                name: k,
                kind: GroupKind::MicroSegment,
                version: None,
                acc,
            });
        }
        out
    }
}

/// Accounts `0..n` on `threads` workers, each folding the accounts `visit` hands it (an
/// account `visit` skips is in no group), merged in worker order.
pub fn fold_parallel(
    n: usize,
    threads: usize,
    make: &(dyn Fn() -> Fold + Sync),
    visit: &(dyn Fn(&mut Fold, AccountIdx) + Sync),
) -> Fold {
    let threads = threads.clamp(1, n.max(1));
    let chunk = n.div_ceil(threads).max(1);
    let parts: Vec<Fold> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut f = make();
                    for idx in (t * chunk).min(n)..((t + 1) * chunk).min(n) {
                        visit(&mut f, idx as AccountIdx);
                    }
                    f
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("analysis worker panicked"))
            .collect()
    });
    let mut parts = parts.into_iter();
    let mut total = parts.next().expect("at least one worker");
    for p in parts {
        total.merge(p);
    }
    total
}
