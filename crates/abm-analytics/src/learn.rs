//! ICP discovery: from the outcomes before a date, each attribute value (or numeric band) of
//! the accounts with its rate, its lift over the base rate (with a Wilson interval) and its
//! support; the values that lift the outcome become graded criteria and points, tiers cut at
//! the score's quantiles; the result is judged on the outcomes after the date (a time split:
//! the rows that taught it never judge it).

use crate::stats::{self, Z95};
use abm_core::config::{Band, Criterion, IcpConfig, MissingRule, Points, TierThresholds};
use abm_core::{
    AccountIdx, AccountRef, AccountTable, Deal, DealOutcome, Instant, ScoringModel, Tier,
};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Won a deal.
    Won,
    /// Opened a deal.
    Opportunity,
    /// Won revenue (the rate is the mean per account).
    Revenue,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Won => "won",
            Target::Opportunity => "opportunity",
            Target::Revenue => "revenue",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "won" => Some(Target::Won),
            "opportunity" => Some(Target::Opportunity),
            "revenue" => Some(Target::Revenue),
            _ => None,
        }
    }
}

/// One account's outcome before `before` (included) and after it.
pub fn outcomes(deals: &[Deal], target: Target, before: Instant) -> (f64, f64) {
    let (mut pre, mut post) = (0.0f64, 0.0f64);
    for d in deals {
        match target {
            Target::Opportunity => {
                if d.created_at <= before {
                    pre = 1.0;
                } else {
                    post = 1.0;
                }
            }
            Target::Won | Target::Revenue => {
                let Some(c) = d.closed_at.filter(|_| d.outcome == DealOutcome::Won) else {
                    continue;
                };
                let v = match target {
                    Target::Won => 1.0,
                    _ => d.amount.unwrap_or(0.0),
                };
                let slot = if c <= before { &mut pre } else { &mut post };
                *slot = if target == Target::Won {
                    1.0
                } else {
                    *slot + v
                };
            }
        }
    }
    (pre, post)
}

#[derive(Debug, Clone)]
pub struct LearnOptions {
    pub target: Target,
    pub before: Instant,
    /// Accounts a value needs before it may become a criterion.
    pub min_support: u64,
    /// The lift a value needs.
    pub min_lift: f64,
}

/// One attribute value or band and what it did before the date.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttributeRow {
    pub field: String,
    /// The value (lower case) or the band (`min–max`).
    pub value: String,
    pub support: u64,
    /// Won / opportunity: the share with the outcome; revenue: the mean per account.
    pub rate: f64,
    pub rate_ci: Option<[f64; 2]>,
    pub lift: Option<f64>,
    pub lift_ci: Option<[f64; 2]>,
    pub points: f64,
}

/// The learned tiers judged on the outcomes after the date.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TierOutcome {
    pub tier: String,
    pub accounts: u64,
    pub rate: Option<f64>,
    pub rate_ci: Option<[f64; 2]>,
    pub lift: Option<f64>,
    pub lift_ci: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Learned {
    pub target: Target,
    pub before: String,
    pub accounts: u64,
    pub base_rate_before: Option<f64>,
    pub base_rate_after: Option<f64>,
    pub attributes: Vec<AttributeRow>,
    #[serde(skip)]
    pub icp: IcpConfig,
    /// The learned tiers on the outcomes after the date.
    pub after_learned: Vec<TierOutcome>,
    /// The current config's tiers on the same outcomes.
    pub after_current: Vec<TierOutcome>,
    pub notes: Vec<String>,
}

const SKIP: &[&str] = &[
    "account_id",
    "name",
    "domain",
    "icp_score",
    "icp_tier",
    "website",
    "description",
];
const MAX_CATEGORIES: usize = 40;

enum Attr {
    Categorical {
        col: usize,
    },
    Numeric {
        col: usize,
        field: String,
        bands: Vec<Band>,
    },
}

fn numeric(account: &AccountRef<'_>, field: &str, col: usize) -> Option<f64> {
    let f = account.firmographics();
    match field {
        "employees" => f.employees,
        "annual_revenue" => f.annual_revenue,
        "founded_year" => f.founded_year.map(f64::from),
        _ => {
            let t = account.value(col).trim();
            (!t.is_empty())
                .then(|| t.replace(',', "").parse::<f64>().ok())
                .flatten()
        }
    }
}

/// The quantile `q` of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Bands at the quartiles (first match wins, as in scoring): ≤ q1, q1–q2, q2–q3, ≥ q3.
fn quartile_bands(mut values: Vec<f64>) -> Vec<Band> {
    values.sort_unstable_by(f64::total_cmp);
    let mut cuts: Vec<f64> = [0.25, 0.5, 0.75]
        .iter()
        .map(|q| quantile(&values, *q))
        .collect();
    cuts.dedup();
    let mut bands = Vec::new();
    let mut lo: Option<f64> = None;
    for c in &cuts {
        bands.push(Band {
            min: lo,
            max: Some(*c),
            points: 0.0,
        });
        lo = Some(*c);
    }
    bands.push(Band {
        min: lo,
        max: None,
        points: 0.0,
    });
    bands
}

fn band_of(bands: &[Band], v: f64) -> usize {
    bands
        .iter()
        .position(|b| b.min.is_none_or(|m| v >= m) && b.max.is_none_or(|m| v <= m))
        .unwrap_or(bands.len() - 1)
}

fn band_text(b: &Band) -> String {
    let f = abm_core::scoring::format_score;
    match (b.min, b.max) {
        (None, Some(hi)) => format!("≤ {}", f(hi)),
        (Some(lo), Some(hi)) => format!("{}–{}", f(lo), f(hi)),
        (Some(lo), None) => format!("≥ {}", f(lo)),
        (None, None) => "any".into(),
    }
}

/// Points of a value with `lift`: 20 per unit of lift above 1, between 1 and 40.
pub fn points_of(lift: f64) -> f64 {
    ((lift - 1.0) * 20.0).round().clamp(1.0, 40.0)
}

/// Learn an ICP from `table` and each account's deals.
pub fn learn<'d>(
    table: &AccountTable,
    deals_of: &dyn Fn(AccountIdx) -> &'d [Deal],
    current: &IcpConfig,
    opts: &LearnOptions,
) -> Learned {
    let n = table.len();
    let schema = table.schema();
    let ys: Vec<(f64, f64)> = (0..n as AccountIdx)
        .map(|i| outcomes(deals_of(i), opts.target, opts.before))
        .collect();
    let binary = opts.target != Target::Revenue;
    let mean = |vals: &mut dyn Iterator<Item = f64>| {
        let (s, c) = vals.fold((0.0, 0u64), |(s, c), v| (s + v, c + 1));
        (c > 0).then(|| s / c as f64)
    };
    let base_pre = mean(&mut ys.iter().map(|y| y.0));
    let base_post = mean(&mut ys.iter().map(|y| y.1));
    let mut notes = Vec::new();

    // Which columns to read, and how.
    let mut attrs = Vec::new();
    for (col, name) in schema.columns().iter().enumerate() {
        if SKIP.contains(&name.as_str()) {
            continue;
        }
        let mut nums = Vec::new();
        let mut texts: BTreeMap<String, ()> = BTreeMap::new();
        let mut present = 0u64;
        for i in 0..n as AccountIdx {
            let a = table.get(i);
            let t = a.value(col).trim();
            if t.is_empty() {
                continue;
            }
            present += 1;
            if let Some(v) = numeric(&a, name, col) {
                nums.push(v);
            }
            if texts.len() <= MAX_CATEGORIES {
                texts.insert(t.to_lowercase(), ());
            }
        }
        if present == 0 {
            continue;
        }
        if nums.len() as f64 >= 0.9 * present as f64 && texts.len() > 8 {
            attrs.push(Attr::Numeric {
                col,
                field: name.clone(),
                bands: quartile_bands(nums),
            });
        } else if texts.len() <= MAX_CATEGORIES && texts.len() > 1 {
            attrs.push(Attr::Categorical { col });
        }
    }

    let mut rows = Vec::new();
    let mut criteria = Vec::new();
    for attr in &attrs {
        // value → (support, sum of outcomes)
        let mut by: BTreeMap<usize, (String, u64, f64)> = BTreeMap::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let field = match attr {
            Attr::Categorical { col } | Attr::Numeric { col, .. } => schema.columns()[*col].clone(),
        };
        for i in 0..n as AccountIdx {
            let a = table.get(i);
            let key = match attr {
                Attr::Categorical { col } => {
                    let t = a.value(*col).trim();
                    if t.is_empty() {
                        continue;
                    }
                    let t = t.to_lowercase();
                    let next = names.len();
                    *names.entry(t).or_insert(next)
                }
                Attr::Numeric { col, field, bands } => match numeric(&a, field, *col) {
                    Some(v) => band_of(bands, v),
                    None => continue,
                },
            };
            let e = by.entry(key).or_insert_with(|| (String::new(), 0, 0.0));
            e.1 += 1;
            e.2 += ys[i as usize].0;
        }
        for (k, name) in &names {
            if let Some(e) = by.get_mut(name) {
                e.0 = k.clone();
            }
        }
        let mut graded: BTreeMap<String, f64> = BTreeMap::new();
        let mut band_points: Vec<f64> = match attr {
            Attr::Numeric { bands, .. } => vec![0.0; bands.len()],
            _ => vec![],
        };
        for (key, (name, support, sum)) in &by {
            let value = match attr {
                Attr::Numeric { bands, .. } => band_text(&bands[*key]),
                _ => name.clone(),
            };
            let rate = sum / *support as f64;
            let (rate_ci, lift, lift_ci) = match base_pre.filter(|b| *b > 0.0) {
                Some(b) => {
                    let ci = binary
                        .then(|| stats::wilson(*sum as u64, *support, Z95))
                        .flatten();
                    (ci, Some(rate / b), ci.map(|[lo, hi]| [lo / b, hi / b]))
                }
                None => (None, None, None),
            };
            // Won / opportunity: the lift must also be clear of chance (its interval's lower
            // bound above 1), or many small values would pass by luck.
            let clear = !binary || lift_ci.is_some_and(|[lo, _]| lo > 1.0);
            let chosen =
                *support >= opts.min_support && lift.is_some_and(|l| l >= opts.min_lift) && clear;
            let points = if chosen {
                points_of(lift.expect("chosen"))
            } else {
                0.0
            };
            if chosen {
                match attr {
                    Attr::Numeric { .. } => band_points[*key] = points,
                    _ => {
                        graded.insert(name.clone(), points);
                    }
                }
            }
            rows.push(AttributeRow {
                field: field.clone(),
                value,
                support: *support,
                rate,
                rate_ci,
                lift,
                lift_ci,
                points,
            });
        }
        match attr {
            Attr::Categorical { .. } if !graded.is_empty() => criteria.push(Criterion::In {
                field: field.clone(),
                values: vec![],
                points: Points::PerValue(graded),
            }),
            Attr::Numeric { bands, .. } if band_points.iter().any(|p| *p > 0.0) => {
                criteria.push(Criterion::Bands {
                    field: field.clone(),
                    bands: bands
                        .iter()
                        .zip(&band_points)
                        .map(|(b, p)| Band {
                            points: *p,
                            ..b.clone()
                        })
                        .collect(),
                })
            }
            _ => {}
        }
    }
    rows.sort_by(|a, b| {
        b.points
            .total_cmp(&a.points)
            .then(b.lift.unwrap_or(0.0).total_cmp(&a.lift.unwrap_or(0.0)))
            .then(a.field.cmp(&b.field))
            .then(a.value.cmp(&b.value))
    });
    if criteria.is_empty() {
        notes.push(format!(
            "no attribute value reaches a lift of {:.2} (clear of chance) with {} or more accounts: nothing learned",
            opts.min_lift, opts.min_support
        ));
    }

    // Tiers at the learned score's quantiles (top 10% A, next 15% B, next 25% C, next 25% D).
    let mut icp = IcpConfig {
        missing: MissingRule::Neutral,
        tiers: TierThresholds::default(),
        criteria,
    };
    let model = ScoringModel::new(&icp, schema);
    let scores: Vec<f64> = (0..n as AccountIdx)
        .map(|i| model.criteria_with(&table.get(i), false).0)
        .collect();
    if !icp.criteria.is_empty() && n > 0 {
        let mut s = scores.clone();
        s.sort_unstable_by(f64::total_cmp);
        let smallest_positive = s.iter().copied().find(|v| *v > 0.0).unwrap_or(0.0);
        let q = |p: f64| (quantile(&s, p).max(smallest_positive) * 100.0).round() / 100.0;
        icp.tiers = TierThresholds {
            a: q(0.90),
            b: q(0.75),
            c: q(0.50),
            d: q(0.25),
        };
    }
    let learned_tiers: Vec<Tier> = scores.iter().map(|s| icp.tiers.tier_of(*s)).collect();
    let current_model = ScoringModel::new(current, schema);
    let current_tiers: Vec<Tier> = (0..n as AccountIdx)
        .map(|i| abm_core::score_account(&current_model, &table.get(i), false).tier)
        .collect();
    let judge = |tiers: &[Tier]| -> Vec<TierOutcome> {
        Tier::ALL
            .iter()
            .map(|t| {
                let (mut k, mut sum) = (0u64, 0.0);
                for (i, _) in tiers.iter().enumerate().filter(|(_, x)| *x == t) {
                    k += 1;
                    sum += ys[i].1;
                }
                let rate = (k > 0).then(|| sum / k as f64);
                let ci = binary.then(|| stats::wilson(sum as u64, k, Z95)).flatten();
                let b = base_post.filter(|b| *b > 0.0);
                TierOutcome {
                    tier: t.as_str().into(),
                    accounts: k,
                    rate,
                    rate_ci: ci,
                    lift: rate.zip(b).map(|(r, b)| r / b),
                    lift_ci: ci.zip(b).map(|([lo, hi], b)| [lo / b, hi / b]),
                }
            })
            .collect()
    };
    Learned {
        target: opts.target,
        before: opts.before.to_rfc3339(),
        accounts: n as u64,
        base_rate_before: base_pre,
        base_rate_after: base_post,
        attributes: rows,
        after_learned: judge(&learned_tiers),
        after_current: judge(&current_tiers),
        icp,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::tests::{day, deal};
    use abm_core::{AccountSchema, Firmographics};
    use DealOutcome::*;

    #[test]
    fn outcomes_split_at_the_date() {
        let d = [
            deal(Won, "2025-01-01", Some("2025-06-01"), Some(10.0)),
            deal(Won, "2025-07-01", Some("2026-02-01"), Some(5.0)),
            deal(Lost, "2026-03-01", Some("2026-04-01"), Some(7.0)),
        ];
        let at = day("2026-01-01");
        assert_eq!(outcomes(&d, Target::Won, at), (1.0, 1.0));
        assert_eq!(outcomes(&d, Target::Revenue, at), (10.0, 5.0));
        assert_eq!(outcomes(&d, Target::Opportunity, at), (1.0, 1.0));
        assert_eq!(outcomes(&d[2..], Target::Won, at), (0.0, 0.0));
        assert_eq!(outcomes(&d[2..], Target::Opportunity, at), (0.0, 1.0));
        assert_eq!(points_of(1.0), 1.0);
        assert_eq!(points_of(2.0), 20.0);
        assert_eq!(points_of(9.0), 40.0);
    }

    #[test]
    fn quartile_bands_cover_every_value_once() {
        let b = quartile_bands((1..=100).map(f64::from).collect());
        assert_eq!(b.len(), 4);
        assert_eq!(band_of(&b, 1.0), 0);
        assert_eq!(band_of(&b, 100.0), 3);
        assert_eq!(band_text(&b[0]), "≤ 26");
        // Few distinct values collapse their cuts.
        let b = quartile_bands(vec![1.0, 1.0, 1.0, 1.0, 2.0]);
        assert_eq!(b.len(), 2);
    }

    /// Software accounts win; retail ones do not: the learned ICP finds it, gives software
    /// points, and its tier A lifts the outcomes after the date.
    #[test]
    fn learns_the_attribute_that_wins_and_judges_it_after_the_date() {
        let schema =
            AccountSchema::new(["account_id", "name", "industry", "employees"].map(String::from));
        let mut t = AccountTable::new(schema);
        let mut deals: Vec<Vec<Deal>> = Vec::new();
        for i in 0..200u32 {
            let software = i % 4 == 0;
            let industry = if software { "Software" } else { "retail" };
            let emp = (10 + i * 7).to_string();
            let f = Firmographics {
                employees: Some(f64::from(10 + i * 7)),
                ..Default::default()
            };
            let id = format!("a{i}");
            t.push([id.as_str(), "x", industry, emp.as_str()], &f, 1);
            let mut v = Vec::new();
            if software || i % 17 == 0 {
                v.push(deal(Won, "2025-01-01", Some("2025-06-01"), Some(100.0)));
            }
            if software && i % 8 == 0 {
                v.push(deal(Won, "2026-01-01", Some("2026-03-01"), Some(100.0)));
            }
            if !software && i % 50 == 1 {
                v.push(deal(Won, "2026-01-01", Some("2026-03-01"), Some(100.0)));
            }
            deals.push(v);
        }
        let opts = LearnOptions {
            target: Target::Won,
            before: day("2025-12-31"),
            min_support: 10,
            min_lift: 1.2,
        };
        let l = learn(
            &t,
            &|i| deals[i as usize].as_slice(),
            &IcpConfig::default(),
            &opts,
        );
        let top = &l.attributes[0];
        assert_eq!(
            (top.field.as_str(), top.value.as_str()),
            ("industry", "software")
        );
        assert_eq!(top.support, 50);
        assert!(top.lift.unwrap() > 3.0 && top.points > 0.0, "{top:?}");
        match &l.icp.criteria[0] {
            Criterion::In {
                points: Points::PerValue(m),
                ..
            } => {
                assert!(
                    m.contains_key("software") && !m.contains_key("retail"),
                    "{m:?}"
                )
            }
            c => panic!("{c:?}"),
        }
        // The fragment is a config `--config` accepts.
        let text = toml::to_string(&Frag { icp: &l.icp }).unwrap();
        abm_core::Config::from_toml(&text).unwrap();
        // After the date: tier A (software) wins more than the base rate.
        let a = &l.after_learned[0];
        assert!(
            a.accounts > 0 && a.lift.unwrap() > 1.5,
            "{:?}",
            l.after_learned
        );
    }

    #[derive(serde::Serialize)]
    struct Frag<'a> {
        icp: &'a IcpConfig,
    }
}
