//! Segment performance for a period: one account's deals read once ([`AccountDeals`]), added
//! to every group the account belongs to ([`GroupAcc`]), then turned into the output ROW
//! ([`Row`]). Definitions (issue 16, item 10):
//!
//! - the period is `from` (D1 00:00 UTC) to `to` (the last microsecond of D2), both included;
//! - a customer has ≥ 1 won deal closed (dated) by `to`; a new customer's first dated win falls
//!   in the period;
//! - won / lost count deals whose `closed_at` falls in the period;
//! - open counts deals created by `to` and not closed by it (closed after `to` = open then);
//! - cycle = whole days (floor) from `created_at` to `closed_at` of the period's won deals.
//!
//! A figure that cannot be computed is `None` (JSON `null`), never 0: a win rate without closed
//! deals, revenue of won deals none of which has an amount, a median of nothing.

use crate::stats::{self, Z95};
use abm_core::time::MICROS_PER_DAY;
use abm_core::{AccountIdx, Deal, DealOutcome, Instant};
use serde::Serialize;

/// The period of an analysis, both ends included, and the instant clusters are assessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Instant,
    /// Inclusive end.
    pub to: Instant,
    pub as_of: Instant,
}

impl Period {
    /// D1 00:00 to the end of D2 (both dates at midnight UTC); `as_of` defaults to the end.
    pub fn of_days(d1: Instant, d2: Instant, as_of: Option<Instant>) -> Period {
        let from = Instant(d1.0.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY);
        let to = Instant((d2.0.div_euclid(MICROS_PER_DAY) + 1) * MICROS_PER_DAY - 1);
        Period {
            from,
            to,
            as_of: as_of.unwrap_or(to),
        }
    }

    pub fn contains(&self, t: Instant) -> bool {
        self.from <= t && t <= self.to
    }

    /// Whole days in the period (at least 1).
    pub fn days(&self) -> f64 {
        ((self.to.0 - self.from.0 + 1) as f64 / MICROS_PER_DAY as f64).max(1.0 / 86_400.0)
    }

    /// The period of the same length just before this one (for growth).
    pub fn previous(&self) -> Period {
        let len = self.to.0 - self.from.0 + 1;
        Period {
            from: Instant(self.from.0 - len),
            to: Instant(self.from.0 - 1),
            as_of: Instant(self.from.0 - 1),
        }
    }
}

/// An open deal at the period's end, for the forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenDeal {
    pub created_at: Instant,
    pub amount: Option<f64>,
}

/// One engagement event of an account, as the buying pattern reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    pub account: AccountIdx,
    pub at: Instant,
    /// A hash of the contact id; 0 when the event names no contact.
    pub contact: u64,
    /// The event type is one of `[analytics] meeting_types`.
    pub meeting: bool,
}

impl Touch {
    /// The contact's hash (0 for none): distinct contacts are counted by it.
    pub fn contact_hash(contact: &[u8]) -> u64 {
        let c = contact.trim_ascii();
        if c.is_empty() {
            return 0;
        }
        // FNV-1a, never 0 for a non-empty id.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in c {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h.max(1)
    }
}

/// What one account's deals say about the period (computed once per account).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountDeals {
    pub customer: bool,
    pub new_customer: bool,
    pub won: u64,
    pub lost: u64,
    pub open: u64,
    pub won_revenue: f64,
    pub won_amounts: u64,
    pub prev_won: u64,
    pub prev_won_revenue: f64,
    pub prev_won_amounts: u64,
    /// Won revenue of every dated win by the period's end (observed CLV).
    pub lifetime_revenue: f64,
    pub lifetime_amounts: u64,
    pub cycles: Vec<f64>,
    pub open_pipeline: f64,
    pub open_amounts: u64,
    pub open_deals: Vec<OpenDeal>,
    /// Per won deal of the period: distinct engaged contacts and meetings before the win
    /// (filled by [`AccountDeals::read_touches`]).
    pub contacts_before_win: Vec<f64>,
    pub meetings_before_win: Vec<f64>,
    /// Per deal open at the period's end: (stage, whole days in it so far).
    pub stage_days: Vec<(String, f64)>,
    /// The period's won deals that carry a stage history.
    pub won_with_history: u64,
    /// Per such deal and stage it went through before the win: (stage, its place in the
    /// deal's history, whole days spent in it).
    pub won_stage_days: Vec<(String, usize, f64)>,
}

impl AccountDeals {
    /// Read one account's deals (into `self`, reused from account to account).
    pub fn read(&mut self, deals: &[Deal], p: &Period) {
        let keep = (
            std::mem::take(&mut self.cycles),
            std::mem::take(&mut self.open_deals),
            std::mem::take(&mut self.contacts_before_win),
            std::mem::take(&mut self.meetings_before_win),
            std::mem::take(&mut self.stage_days),
            std::mem::take(&mut self.won_stage_days),
        );
        *self = AccountDeals {
            cycles: keep.0,
            open_deals: keep.1,
            contacts_before_win: keep.2,
            meetings_before_win: keep.3,
            stage_days: keep.4,
            won_stage_days: keep.5,
            ..AccountDeals::default()
        };
        self.cycles.clear();
        self.open_deals.clear();
        self.contacts_before_win.clear();
        self.meetings_before_win.clear();
        self.stage_days.clear();
        self.won_stage_days.clear();
        let prev = p.previous();
        let mut first_win: Option<Instant> = None;
        for d in deals {
            let closed = d.closed_at;
            if d.outcome == DealOutcome::Won {
                if let Some(c) = closed.filter(|c| *c <= p.to) {
                    first_win = Some(first_win.map_or(c, |f| f.min(c)));
                    if let Some(a) = d.amount {
                        self.lifetime_revenue += a;
                        self.lifetime_amounts += 1;
                    }
                }
            }
            match (d.outcome, closed) {
                (DealOutcome::Won, Some(c)) if p.contains(c) => {
                    self.won += 1;
                    if let Some(a) = d.amount {
                        self.won_revenue += a;
                        self.won_amounts += 1;
                    }
                    self.cycles.push(c.days_since(d.created_at) as f64);
                    if !d.history.is_empty() {
                        self.won_with_history += 1;
                        stages_before_win(d, c, &mut self.won_stage_days);
                    }
                }
                (DealOutcome::Won, Some(c)) if prev.contains(c) => {
                    self.prev_won += 1;
                    if let Some(a) = d.amount {
                        self.prev_won_revenue += a;
                        self.prev_won_amounts += 1;
                    }
                }
                (DealOutcome::Lost, Some(c)) if p.contains(c) => self.lost += 1,
                _ => {}
            }
            if d.created_at <= p.to && d.outcome_at(p.to) == DealOutcome::Open {
                self.open += 1;
                if let Some(a) = d.amount {
                    self.open_pipeline += a;
                    self.open_amounts += 1;
                }
                self.open_deals.push(OpenDeal {
                    created_at: d.created_at,
                    amount: d.amount,
                });
                // A deal closed after the period was open then, in a stage the data does
                // not keep: left out.
                let stage = d.stage.trim();
                if d.outcome == DealOutcome::Open && !stage.is_empty() {
                    let since = d.last_change_at(p.to);
                    self.stage_days
                        .push((stage.to_string(), p.to.days_since(since).max(0) as f64));
                }
            }
        }
        self.customer = first_win.is_some();
        self.new_customer = first_win.is_some_and(|f| p.contains(f));
    }

    /// Whitespace: no open deal and no win by the period's end.
    pub fn is_whitespace(&self) -> bool {
        !self.customer && self.open == 0
    }

    /// The buying pattern of the period's wins: for each, the distinct contacts engaged and
    /// the meetings from `window_days` before the deal was created to its close (both
    /// included). `touches` are the account's events (any order).
    pub fn read_touches(
        &mut self,
        deals: &[Deal],
        touches: &[Touch],
        p: &Period,
        window_days: u32,
    ) {
        let mut contacts: Vec<u64> = Vec::new();
        for d in deals {
            let Some(closed) = d
                .closed_at
                .filter(|c| d.outcome == DealOutcome::Won && p.contains(*c))
            else {
                continue;
            };
            let from = Instant(d.created_at.0 - window_days as i64 * MICROS_PER_DAY);
            contacts.clear();
            let mut meetings = 0u64;
            for t in touches.iter().filter(|t| from <= t.at && t.at <= closed) {
                if t.contact != 0 {
                    contacts.push(t.contact);
                }
                meetings += t.meeting as u64;
            }
            contacts.sort_unstable();
            contacts.dedup();
            self.contacts_before_win.push(contacts.len() as f64);
            self.meetings_before_win.push(meetings as f64);
        }
    }
}

/// The stages a won deal went through before its win, from its stage history (oldest first):
/// each open stage lasts from its entry to the next entry (the last one to `closed`, when the
/// history has no winning entry), whole days rounded down; the first winning entry ends the
/// walk (stages after it are not before the win); a stage entered twice adds up. Appended as
/// (stage, its first place in the history, days).
fn stages_before_win(d: &Deal, closed: Instant, out: &mut Vec<(String, usize, f64)>) {
    let start = out.len();
    let h = &d.history;
    for (k, e) in h.iter().enumerate() {
        match e.outcome {
            DealOutcome::Won => break,
            DealOutcome::Lost => continue,
            DealOutcome::Open => {}
        }
        let end = h.get(k + 1).map_or(closed, |n| n.at);
        let days = end.days_since(e.at) as f64;
        let stage = e.stage.trim();
        match out[start..].iter_mut().find(|x| x.0 == stage) {
            Some(x) => x.2 += days,
            None => out.push((stage.to_string(), k, days)),
        }
    }
}

/// How many whitespace accounts each group lists (highest ICP score first).
pub const WHITESPACE_LISTED: usize = 10;

/// The running totals of one group (a cluster, a tier, a segment, all accounts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupAcc {
    pub accounts: u64,
    pub customers: u64,
    pub new_customers: u64,
    pub won: u64,
    pub lost: u64,
    pub open: u64,
    pub won_revenue: f64,
    pub won_amounts: u64,
    pub prev_won: u64,
    pub prev_won_revenue: f64,
    pub prev_won_amounts: u64,
    pub lifetime_revenue: f64,
    pub lifetime_amounts: u64,
    pub cycles: Vec<f64>,
    pub open_pipeline: f64,
    pub open_amounts: u64,
    pub open_deals: Vec<OpenDeal>,
    pub whitespace: u64,
    /// (ICP score, account) of the best-scoring whitespace accounts.
    pub whitespace_top: Vec<(f64, AccountIdx)>,
    pub contacts_before_win: Vec<f64>,
    pub meetings_before_win: Vec<f64>,
    /// Stage → days in it so far of the deals open at the period's end.
    pub stage_days: std::collections::BTreeMap<String, Vec<f64>>,
    /// The period's won deals with a stage history.
    pub won_with_history: u64,
    /// Stage → (its earliest place in a history, days spent in it by each won deal before
    /// the win).
    pub won_stage_days: std::collections::BTreeMap<String, (usize, Vec<f64>)>,
}

impl GroupAcc {
    pub fn add(&mut self, d: &AccountDeals, idx: AccountIdx, score: f64) {
        self.accounts += 1;
        self.customers += d.customer as u64;
        self.new_customers += d.new_customer as u64;
        self.won += d.won;
        self.lost += d.lost;
        self.open += d.open;
        self.won_revenue += d.won_revenue;
        self.won_amounts += d.won_amounts;
        self.prev_won += d.prev_won;
        self.prev_won_revenue += d.prev_won_revenue;
        self.prev_won_amounts += d.prev_won_amounts;
        self.lifetime_revenue += d.lifetime_revenue;
        self.lifetime_amounts += d.lifetime_amounts;
        self.cycles.extend_from_slice(&d.cycles);
        self.open_pipeline += d.open_pipeline;
        self.open_amounts += d.open_amounts;
        self.open_deals.extend_from_slice(&d.open_deals);
        self.contacts_before_win
            .extend_from_slice(&d.contacts_before_win);
        self.meetings_before_win
            .extend_from_slice(&d.meetings_before_win);
        for (stage, days) in &d.stage_days {
            match self.stage_days.get_mut(stage) {
                Some(v) => v.push(*days),
                None => {
                    self.stage_days.insert(stage.clone(), vec![*days]);
                }
            }
        }
        self.won_with_history += d.won_with_history;
        for (stage, place, days) in &d.won_stage_days {
            match self.won_stage_days.get_mut(stage) {
                Some(v) => {
                    v.0 = v.0.min(*place);
                    v.1.push(*days);
                }
                None => {
                    self.won_stage_days
                        .insert(stage.clone(), (*place, vec![*days]));
                }
            }
        }
        if d.is_whitespace() {
            self.whitespace += 1;
            self.offer_whitespace(score, idx);
        }
    }

    fn offer_whitespace(&mut self, score: f64, idx: AccountIdx) {
        let better =
            |a: &(f64, AccountIdx), b: &(f64, AccountIdx)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let v = &mut self.whitespace_top;
        if v.len() < WHITESPACE_LISTED {
            v.push((score, idx));
            v.sort_by(better);
        } else if better(&(score, idx), v.last().expect("full")) == std::cmp::Ordering::Less {
            *v.last_mut().expect("full") = (score, idx);
            v.sort_by(better);
        }
    }

    /// Fold another thread's totals in (the result does not depend on the split).
    pub fn merge(&mut self, o: &GroupAcc) {
        self.accounts += o.accounts;
        self.customers += o.customers;
        self.new_customers += o.new_customers;
        self.won += o.won;
        self.lost += o.lost;
        self.open += o.open;
        self.won_revenue += o.won_revenue;
        self.won_amounts += o.won_amounts;
        self.prev_won += o.prev_won;
        self.prev_won_revenue += o.prev_won_revenue;
        self.prev_won_amounts += o.prev_won_amounts;
        self.lifetime_revenue += o.lifetime_revenue;
        self.lifetime_amounts += o.lifetime_amounts;
        self.cycles.extend_from_slice(&o.cycles);
        self.open_pipeline += o.open_pipeline;
        self.open_amounts += o.open_amounts;
        self.open_deals.extend_from_slice(&o.open_deals);
        self.contacts_before_win
            .extend_from_slice(&o.contacts_before_win);
        self.meetings_before_win
            .extend_from_slice(&o.meetings_before_win);
        for (stage, days) in &o.stage_days {
            self.stage_days
                .entry(stage.clone())
                .or_default()
                .extend_from_slice(days);
        }
        self.won_with_history += o.won_with_history;
        for (stage, (place, days)) in &o.won_stage_days {
            let v = self
                .won_stage_days
                .entry(stage.clone())
                .or_insert((*place, Vec::new()));
            v.0 = v.0.min(*place);
            v.1.extend_from_slice(days);
        }
        self.whitespace += o.whitespace;
        for &(s, i) in &o.whitespace_top {
            self.offer_whitespace(s, i);
        }
    }

    /// Won revenue: the sum of the won deals' amounts; `None` when deals were won but none
    /// has an amount.
    pub fn won_revenue(&self) -> Option<f64> {
        (self.won == 0 || self.won_amounts > 0).then_some(self.won_revenue)
    }

    pub fn prev_won_revenue(&self) -> Option<f64> {
        (self.prev_won == 0 || self.prev_won_amounts > 0).then_some(self.prev_won_revenue)
    }

    /// Open pipeline at the period's end; `None` when deals are open but none has an amount.
    pub fn open_pipeline(&self) -> Option<f64> {
        (self.open == 0 || self.open_amounts > 0).then_some(self.open_pipeline)
    }

    pub fn win_rate(&self) -> Option<f64> {
        stats::rate(self.won, self.won + self.lost)
    }

    pub fn win_rate_ci(&self) -> Option<[f64; 2]> {
        stats::wilson(self.won, self.won + self.lost, Z95)
    }

    pub fn avg_won_deal(&self) -> Option<f64> {
        (self.won_amounts > 0).then(|| self.won_revenue / self.won_amounts as f64)
    }

    /// Median sales cycle in days (sorts the cycles).
    pub fn median_cycle_days(&mut self) -> Option<f64> {
        stats::median(&mut self.cycles)
    }

    /// The buying pattern: medians over the period's wins (null without engagement data or
    /// wins) and, per stage, the days the open deals have spent in it so far.
    pub fn buying_pattern(&mut self, engagement_known: bool) -> BuyingPattern {
        let (contacts, meetings) = if engagement_known {
            (
                stats::median(&mut self.contacts_before_win),
                stats::median(&mut self.meetings_before_win),
            )
        } else {
            (None, None)
        };
        BuyingPattern {
            wins: self.contacts_before_win.len() as u64,
            median_engaged_contacts: contacts,
            median_meetings: meetings,
            stage_days: self
                .stage_days
                .iter_mut()
                .map(|(stage, days)| StageDays {
                    stage: stage.clone(),
                    open_deals: days.len() as u64,
                    median_days: stats::median(days),
                })
                .collect(),
            stage_days_before_win: self.stage_days_before_win(),
        }
    }

    /// Per stage, the median days the period's won deals with a stage history spent in it
    /// before the win, in pipeline order (earliest place in a history, then name); `None`
    /// when no won deal of the period has a history.
    fn stage_days_before_win(&mut self) -> Option<Vec<WonStageDays>> {
        if self.won_with_history == 0 {
            return None;
        }
        let mut out: Vec<(usize, WonStageDays)> = self
            .won_stage_days
            .iter_mut()
            .map(|(stage, (place, days))| {
                (
                    *place,
                    WonStageDays {
                        stage: stage.clone(),
                        won_deals: days.len() as u64,
                        median_days: stats::median(days),
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.stage.cmp(&b.1.stage)));
        Some(out.into_iter().map(|x| x.1).collect())
    }

    /// Customers ÷ accounts.
    pub fn penetration(&self) -> Option<f64> {
        stats::rate(self.customers, self.accounts)
    }

    /// The output ROW; `total_revenue` is the won revenue of all accounts (for the share).
    pub fn row(&mut self, key: &str, total_revenue: Option<f64>) -> Row {
        let won_revenue = self.won_revenue();
        Row {
            key: key.to_string(),
            accounts: self.accounts,
            customers: self.customers,
            won: self.won,
            lost: self.lost,
            open: self.open,
            win_rate: self.win_rate(),
            win_rate_ci: self.win_rate_ci(),
            won_revenue,
            revenue_share: stats::ratio(won_revenue, total_revenue),
            avg_won_deal: self.avg_won_deal(),
            median_cycle_days: self.median_cycle_days(),
            open_pipeline: self.open_pipeline(),
        }
    }
}

/// How a group's customers bought (issue 16, item 3).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BuyingPattern {
    /// Won deals of the period whose engagement was counted.
    pub wins: u64,
    /// Median distinct contacts engaged from `[analytics] buying_window_days` before the deal
    /// was created to the win.
    pub median_engaged_contacts: Option<f64>,
    /// Median meetings (`[analytics] meeting_types`) in the same span.
    pub median_meetings: Option<f64>,
    /// Per stage: the deals open at the period's end and the median days they have spent in
    /// it so far (from their last stage change).
    pub stage_days: Vec<StageDays>,
    /// Typical stage durations: per stage, the period's won deals with a stage history that
    /// went through it and the median whole days they spent in it before the win; `None` when
    /// no won deal of the period has a stage history.
    pub stage_days_before_win: Option<Vec<WonStageDays>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WonStageDays {
    pub stage: String,
    pub won_deals: u64,
    pub median_days: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageDays {
    pub stage: String,
    pub open_deals: u64,
    pub median_days: Option<f64>,
}

/// One row of `by_cluster`, `by_tier` and `segments` (issue 16, item 10).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub key: String,
    pub accounts: u64,
    pub customers: u64,
    pub won: u64,
    pub lost: u64,
    pub open: u64,
    pub win_rate: Option<f64>,
    pub win_rate_ci: Option<[f64; 2]>,
    pub won_revenue: Option<f64>,
    pub revenue_share: Option<f64>,
    pub avg_won_deal: Option<f64>,
    pub median_cycle_days: Option<f64>,
    pub open_pipeline: Option<f64>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn day(s: &str) -> Instant {
        Instant::parse(s).unwrap()
    }

    pub fn deal(
        outcome: DealOutcome,
        created: &str,
        closed: Option<&str>,
        amount: Option<f64>,
    ) -> Deal {
        Deal {
            product: None,
            history: Vec::new(),
            account: 0,
            deal_id: format!("{created}-{closed:?}"),
            stage: String::new(),
            amount,
            created_at: day(created),
            closed_at: closed.map(day),
            last_stage_change_at: None,
            outcome,
        }
    }

    #[test]
    fn the_buying_pattern_counts_contacts_and_meetings_before_each_win() {
        use DealOutcome::*;
        let p = period();
        let t = |at: &str, contact: &str, meeting: bool| Touch {
            account: 0,
            at: day(at),
            contact: Touch::contact_hash(contact.as_bytes()),
            meeting,
        };
        let mut won = deal(Won, "2026-02-01", Some("2026-02-20"), Some(10.0));
        won.stage = "closed won".into();
        let mut open = deal(Open, "2026-01-10", None, None);
        open.stage = "proposal".into();
        open.last_stage_change_at = Some(day("2026-03-01"));
        let deals = [won, open];
        let touches = [
            // 90 days before creation: counted; 91: not.
            t("2025-11-03", "c1", false),
            t("2025-11-02", "c9", true),
            t("2026-02-05", "c2", true),
            t("2026-02-06", "C2 ", false),
            t("2026-02-07", "c2", true),
            t("2026-02-10", "", true),
            // After the close: not.
            t("2026-02-21", "c3", true),
        ];
        let mut a = AccountDeals::default();
        a.read(&deals, &p);
        a.read_touches(&deals, &touches, &p, 90);
        // c1, c2, "C2" (ids are compared as written, trimmed).
        assert_eq!(a.contacts_before_win, vec![3.0]);
        assert_eq!(a.meetings_before_win, vec![3.0]);
        // Open since 2026-03-01 in "proposal": 30 days at 2026-03-31.
        assert_eq!(a.stage_days, vec![("proposal".to_string(), 30.0)]);
        let mut g = GroupAcc::default();
        g.add(&a, 0, 0.0);
        let b = g.buying_pattern(true);
        assert_eq!(
            (b.wins, b.median_engaged_contacts, b.median_meetings),
            (1, Some(3.0), Some(3.0))
        );
        assert_eq!(b.stage_days[0].median_days, Some(30.0));
        // Without engagement data: null, never 0.
        let b = GroupAcc::default().buying_pattern(false);
        assert_eq!((b.median_engaged_contacts, b.median_meetings), (None, None));
    }

    #[test]
    fn typical_stage_durations_come_from_the_won_deals_histories() {
        use DealOutcome::*;
        let p = period();
        let e = |stage: &str, at: &str, outcome| abm_core::engagement::StageEntry {
            stage: stage.into(),
            at: day(at),
            outcome,
        };
        // discovery 10 days, proposal 5 + 3 (entered twice), a lost step in between (not a
        // stage before the win), then won; the entry after the win is not counted.
        let mut a1 = deal(Won, "2026-01-01", Some("2026-02-01"), Some(10.0));
        a1.history = vec![
            e("discovery", "2026-01-01", Open),
            e("proposal", "2026-01-11", Open),
            e("negotiation lost", "2026-01-16", Lost),
            e("proposal", "2026-01-17", Open),
            e("won", "2026-01-20T12:00:00Z", Won),
            e("renewal", "2026-01-25", Open),
        ];
        // No winning entry: the last stage lasts to the close.
        let mut a2 = deal(Won, "2026-02-01", Some("2026-03-01"), Some(10.0));
        a2.history = vec![
            e("discovery", "2026-02-01", Open),
            e("proposal", "2026-02-21", Open),
        ];
        // Won without a history, won before the period, lost: not counted.
        let a3 = deal(Won, "2026-01-01", Some("2026-01-05"), None);
        let mut a4 = deal(Won, "2025-10-01", Some("2025-11-01"), None);
        a4.history = vec![e("discovery", "2025-10-01", Open)];
        let mut a5 = deal(Lost, "2026-01-01", Some("2026-01-05"), None);
        a5.history = vec![e("discovery", "2026-01-01", Open)];
        let mut a = AccountDeals::default();
        a.read(&[a1, a2, a3, a4, a5], &p);
        assert_eq!(a.won_with_history, 2);
        assert_eq!(
            a.won_stage_days,
            vec![
                ("discovery".to_string(), 0, 10.0),
                ("proposal".to_string(), 1, 8.0),
                ("discovery".to_string(), 0, 20.0),
                ("proposal".to_string(), 1, 8.0),
            ]
        );
        let mut g = GroupAcc::default();
        g.add(&a, 0, 0.0);
        let b = g.buying_pattern(false);
        assert_eq!(
            b.stage_days_before_win,
            Some(vec![
                WonStageDays {
                    stage: "discovery".into(),
                    won_deals: 2,
                    median_days: Some(15.0)
                },
                WonStageDays {
                    stage: "proposal".into(),
                    won_deals: 2,
                    median_days: Some(8.0)
                },
            ])
        );
        // No won deal with a history: null, never an empty list.
        let mut none = AccountDeals::default();
        none.read(&[deal(Won, "2026-01-01", Some("2026-01-05"), None)], &p);
        let mut g = GroupAcc::default();
        g.add(&none, 0, 0.0);
        assert_eq!(g.buying_pattern(false).stage_days_before_win, None);
    }

    pub fn period() -> Period {
        Period::of_days(day("2026-01-01"), day("2026-03-31"), None)
    }

    #[test]
    fn the_period_holds_both_days_whole() {
        let p = period();
        assert!(p.contains(day("2026-01-01T00:00:00Z")));
        assert!(p.contains(day("2026-03-31T23:59:59Z")));
        assert!(!p.contains(day("2026-04-01T00:00:00Z")));
        assert!(!p.contains(day("2025-12-31T23:59:59Z")));
        assert_eq!(p.days(), 90.0);
        assert_eq!(p.as_of, p.to);
        let q = p.previous();
        assert_eq!(q.to.0 + 1, p.from.0);
        assert_eq!(q.days(), 90.0);
    }

    #[test]
    fn an_accounts_deals_in_the_period() {
        use DealOutcome::*;
        let deals = [
            // Won in the period, 10 days' cycle.
            deal(Won, "2026-01-05", Some("2026-01-15T12:00:00Z"), Some(100.0)),
            // Won in the period without an amount: counts, no revenue.
            deal(Won, "2025-12-01", Some("2026-02-01"), None),
            // Won before: a customer already, previous period's revenue.
            deal(Won, "2025-10-01", Some("2025-11-01"), Some(50.0)),
            // Lost in the period.
            deal(Lost, "2026-01-01", Some("2026-03-31T23:00:00Z"), Some(7.0)),
            // Closed after the period: open then.
            deal(Won, "2026-03-01", Some("2026-04-02"), Some(30.0)),
            // Open, created before the end.
            deal(Open, "2026-02-01", None, Some(20.0)),
            // Created after the period: does not exist then.
            deal(Open, "2026-04-05", None, Some(999.0)),
        ];
        let mut a = AccountDeals::default();
        a.read(&deals, &period());
        assert_eq!((a.won, a.lost, a.open), (2, 1, 2));
        assert_eq!((a.won_revenue, a.won_amounts), (100.0, 1));
        assert_eq!((a.prev_won, a.prev_won_revenue), (1, 50.0));
        assert_eq!(a.cycles, vec![10.0, 62.0]);
        assert_eq!((a.open_pipeline, a.open_amounts), (50.0, 2));
        assert!(a.customer && !a.new_customer);
        assert_eq!(a.lifetime_revenue, 150.0);
        assert!(!a.is_whitespace());
        // First win in the period: a new customer.
        a.read(&deals[..1], &period());
        assert!(a.customer && a.new_customer);
        // Nothing: whitespace, no customer.
        a.read(&[], &period());
        assert!(a.is_whitespace() && !a.customer && a.cycles.is_empty());
    }

    #[test]
    fn rows_say_null_for_what_cannot_be_computed() {
        use DealOutcome::*;
        let mut g = GroupAcc::default();
        let mut a = AccountDeals::default();
        // An account with an open deal without an amount, and one in no deal at all.
        a.read(&[deal(Open, "2026-01-02", None, None)], &period());
        g.add(&a, 0, 50.0);
        a.read(&[], &period());
        g.add(&a, 1, 70.0);
        let r = g.row("x", Some(0.0));
        assert_eq!(r.accounts, 2);
        assert_eq!(r.win_rate, None);
        assert_eq!(r.win_rate_ci, None);
        assert_eq!(r.won_revenue, Some(0.0));
        assert_eq!(r.revenue_share, None);
        assert_eq!(r.avg_won_deal, None);
        assert_eq!(r.median_cycle_days, None);
        assert_eq!(r.open_pipeline, None);
        assert_eq!(g.whitespace, 1);
        assert_eq!(g.whitespace_top, vec![(70.0, 1)]);
        // Won deals, none with an amount: revenue unknown.
        let mut g = GroupAcc::default();
        a.read(
            &[deal(Won, "2026-01-02", Some("2026-01-03"), None)],
            &period(),
        );
        g.add(&a, 0, 0.0);
        let r = g.row("x", Some(10.0));
        assert_eq!(
            (r.won_revenue, r.revenue_share, r.win_rate),
            (None, None, Some(1.0))
        );
    }

    #[test]
    fn merging_equals_one_pass() {
        use DealOutcome::*;
        let accounts: Vec<Vec<Deal>> = (0..30)
            .map(|i| {
                let amt = (i % 3 != 0).then_some(i as f64 * 10.0);
                let out = [Won, Lost, Open][i % 3];
                let closed = (out != Open).then(|| format!("2026-02-{:02}", 1 + i % 28));
                vec![deal(out, "2026-01-01", closed.as_deref(), amt)]
            })
            .collect();
        let p = period();
        let mut one = GroupAcc::default();
        let (mut left, mut right) = (GroupAcc::default(), GroupAcc::default());
        let mut a = AccountDeals::default();
        for (i, deals) in accounts.iter().enumerate() {
            a.read(deals, &p);
            one.add(&a, i as u32, (i * 7 % 13) as f64);
            if i < 11 { &mut left } else { &mut right }.add(&a, i as u32, (i * 7 % 13) as f64);
        }
        left.merge(&right);
        let (r1, r2) = (one.row("k", Some(1e4)), left.row("k", Some(1e4)));
        assert_eq!(r1, r2);
        assert_eq!(one.whitespace_top, left.whitespace_top);
        assert_eq!(r1.won + r1.lost + r1.open, 30);
        assert_eq!(one.buying_pattern(true), left.buying_pattern(true));
        assert_eq!(r1.win_rate, Some(0.5));
    }
}
