//! From the groups' totals to `analytics.json`: CLV, CAC, LTV:CAC and payback per segment,
//! the grow / maintain / enter / exit recommendation with its reasons, whitespace and the
//! forecast. Everything here is arithmetic over [`GroupAcc`]; the caller fills the groups.

use crate::perf::{BuyingPattern, GroupAcc, Period, Row};
use crate::stats::{self, ratio, round6};
use abm_core::segments::{AnalyticsConfig, ClvMode};
use abm_core::time::MICROS_PER_DAY;
use abm_core::{AccountIdx, Instant};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    All,
    Cluster,
    Tier,
    MicroSegment,
    Segment,
}

/// A group and its totals.
#[derive(Debug, Clone)]
pub struct Group {
    /// `all`, a cluster (`active_focus`), a tier (`A`), a micro-segment or a segment's name.
    pub name: String,
    pub kind: GroupKind,
    pub description: String,
    /// A `[[segments]]` definition's stored version (from a recorded run).
    pub version: Option<i64>,
    pub acc: GroupAcc,
}

impl Group {
    /// The key in `segments`: `cluster:NAME`, `tier:X`, `micro:TEXT`, or the segment's name.
    pub fn key(&self) -> String {
        match self.kind {
            GroupKind::All => "all".into(),
            GroupKind::Cluster => format!("cluster:{}", self.name),
            GroupKind::Tier => format!("tier:{}", self.name),
            GroupKind::MicroSegment => format!("micro:{}", self.name),
            GroupKind::Segment => self.name.clone(),
        }
    }
}

/// One row of `spend.csv`: money spent from `start` to `end` (whole days, both included) on a
/// segment (its key or bare name) or, without one, on a channel (counted for all accounts).
#[derive(Debug, Clone, PartialEq)]
pub struct Spend {
    pub start: Instant,
    pub end: Instant,
    pub segment: Option<String>,
    pub channel: Option<String>,
    pub amount: f64,
}

impl Spend {
    /// The part of this row's amount that falls in the period (by days of overlap).
    pub fn in_period(&self, p: &Period) -> f64 {
        let start = self.start.0.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY;
        let end = (self.end.0.div_euclid(MICROS_PER_DAY) + 1) * MICROS_PER_DAY - 1;
        if end < start {
            return 0.0;
        }
        let lo = start.max(p.from.0);
        let hi = end.min(p.to.0);
        if hi < lo {
            return 0.0;
        }
        self.amount * ((hi - lo + 1) as f64 / (end - start + 1) as f64)
    }
}

/// Spend per segment key in the period; `None` when no spend file was given.
fn spend_of(spend: Option<&[Spend]>, g: &Group, p: &Period) -> Option<f64> {
    let rows = spend?;
    let key = g.key();
    let mut total = 0.0;
    let mut any = false;
    for s in rows {
        let hit = match (&s.segment, g.kind) {
            (None, GroupKind::All) => true,
            (Some(seg), GroupKind::All) => seg.eq_ignore_ascii_case("all"),
            (Some(seg), _) => seg == &key || seg == &g.name,
            (None, _) => false,
        };
        if hit {
            any = true;
            total += s.in_period(p);
        }
    }
    any.then_some(total)
}

/// A segment's row: the ROW plus value, growth and the recommendation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentRow {
    #[serde(flatten)]
    pub row: Row,
    pub kind: GroupKind,
    pub description: String,
    /// The version of the segment's definition the run recorded (`abm analyze` on the store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    pub new_customers: u64,
    pub penetration: Option<f64>,
    pub prev_won_revenue: Option<f64>,
    pub won_revenue_growth: Option<f64>,
    pub spend: Option<f64>,
    pub margin: f64,
    pub clv: Option<f64>,
    pub cac: Option<f64>,
    pub ltv_cac: Option<f64>,
    pub payback_months: Option<f64>,
    /// Win rate ÷ the win rate of all accounts (the quadrant's vertical axis).
    pub attractiveness: Option<f64>,
    /// Share of won revenue (the quadrant's horizontal axis).
    pub position: Option<f64>,
    pub recommendation: Recommendation,
    pub reasons: Vec<String>,
    pub buying_pattern: BuyingPattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    Grow,
    Maintain,
    Enter,
    Exit,
}

impl Recommendation {
    pub fn as_str(self) -> &'static str {
        match self {
            Recommendation::Grow => "grow",
            Recommendation::Maintain => "maintain",
            Recommendation::Enter => "enter",
            Recommendation::Exit => "exit",
        }
    }
}

/// Customer value of one group (see [`AnalyticsConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value {
    pub clv: Option<f64>,
    pub cac: Option<f64>,
    pub ltv_cac: Option<f64>,
    pub payback_months: Option<f64>,
}

/// Days per month on average (365.25 / 12).
pub const DAYS_PER_MONTH: f64 = 30.4375;

/// CLV, CAC, LTV:CAC and payback of a group.
pub fn value(
    acc: &GroupAcc,
    p: &Period,
    cfg: &AnalyticsConfig,
    margin: f64,
    spend: Option<f64>,
) -> Value {
    let customers = (acc.customers > 0).then_some(acc.customers as f64);
    // Won revenue per customer in the period, and per year.
    let per_customer = ratio(acc.won_revenue(), customers);
    let clv = match cfg.clv {
        ClvMode::Observed => (acc.lifetime_amounts > 0)
            .then_some(acc.lifetime_revenue)
            .and_then(|r| ratio(Some(r), customers))
            .map(|v| v * margin),
        ClvMode::Annual => match (per_customer, cfg.churn_rate) {
            (Some(v), Some(churn)) => Some(v * 365.0 / p.days() * margin / churn),
            _ => None,
        },
    };
    let new = (acc.new_customers > 0).then_some(acc.new_customers as f64);
    let cac = ratio(spend, new);
    let monthly_margin = per_customer.map(|v| v * margin / (p.days() / DAYS_PER_MONTH));
    Value {
        clv,
        cac,
        ltv_cac: ratio(clv, cac),
        payback_months: ratio(cac, monthly_margin),
    }
}

/// grow / maintain / enter / exit and the reasons in words (thresholds: `[analytics.prioritize]`).
pub fn recommend(
    acc: &GroupAcc,
    value: &Value,
    overall_win_rate: Option<f64>,
    growth: Option<f64>,
    cfg: &AnalyticsConfig,
) -> (Recommendation, Vec<String>) {
    let t = &cfg.prioritize;
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let closed = acc.won + acc.lost;
    let penetration = acc.penetration();
    let mut reasons = Vec::new();
    if acc.accounts == 0 {
        return (
            Recommendation::Maintain,
            vec!["no accounts in this segment in the data".into()],
        );
    }
    if closed < t.min_closed_deals {
        reasons.push(format!(
            "{closed} closed deals in the period, fewer than the {} needed to judge its win rate",
            t.min_closed_deals
        ));
        return match penetration {
            Some(pen) if pen < t.enter_penetration => {
                reasons.push(format!(
                    "only {} of its {} accounts are customers (below {}): test it",
                    pct(pen),
                    acc.accounts,
                    pct(t.enter_penetration)
                ));
                (Recommendation::Enter, reasons)
            }
            _ => (Recommendation::Maintain, reasons),
        };
    }
    let wr = acc.win_rate().expect("closed > 0");
    let ci = acc.win_rate_ci().expect("closed > 0");
    if ci[1] < t.exit_win_rate {
        reasons.push(format!(
            "win rate {} (95% interval {}–{}) is below {} even at its upper bound",
            pct(wr),
            pct(ci[0]),
            pct(ci[1]),
            pct(t.exit_win_rate)
        ));
        return (Recommendation::Exit, reasons);
    }
    if let Some(l) = value.ltv_cac.filter(|l| *l < t.exit_ltv_cac) {
        reasons.push(format!(
            "LTV:CAC {l:.2} is below {:.2}: each customer costs more than it returns",
            t.exit_ltv_cac
        ));
        return (Recommendation::Exit, reasons);
    }
    // Strong: the win rate's lower 95% bound clears the ratio × all accounts' rate (a
    // difference within the noise is not a reason to grow).
    let strong = overall_win_rate.is_some_and(|o| ci[0] >= t.grow_win_rate_ratio * o);
    match overall_win_rate {
        Some(o) => reasons.push(format!(
            "win rate {} (95% interval {}–{}) vs {} for all accounts",
            pct(wr),
            pct(ci[0]),
            pct(ci[1]),
            pct(o)
        )),
        None => reasons.push(format!("win rate {}", pct(wr))),
    }
    let growing = growth.is_some_and(|g| g > 0.0);
    let valuable = value.ltv_cac.is_some_and(|l| l >= t.grow_ltv_cac);
    if let Some(g) = growth {
        reasons.push(format!(
            "won revenue {} {} over the previous period",
            if g >= 0.0 { "grew" } else { "fell" },
            pct(g.abs())
        ));
    }
    if let Some(l) = value.ltv_cac {
        reasons.push(format!("LTV:CAC {l:.2}"));
    }
    if strong && (growing || valuable) {
        return (Recommendation::Grow, reasons);
    }
    if let Some(pen) = penetration.filter(|p| *p < t.enter_penetration) {
        if strong {
            reasons.push(format!(
                "only {} of its accounts are customers (below {}): room to enter",
                pct(pen),
                pct(t.enter_penetration)
            ));
            return (Recommendation::Enter, reasons);
        }
    }
    (Recommendation::Maintain, reasons)
}

/// Whitespace of one segment: accounts with no open deal and no win, sized by the segment's
/// win rate × average won deal.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Whitespace {
    pub key: String,
    pub accounts: u64,
    pub win_rate: Option<f64>,
    pub avg_won_deal: Option<f64>,
    pub estimated_value: Option<f64>,
    /// The best-scoring whitespace accounts (ICP score, highest first).
    pub top_accounts: Vec<String>,
}

/// One month of the forecast of one group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ForecastMonth {
    pub key: String,
    /// `YYYY-MM` of the expected close (created + the group's median cycle; an overdue deal
    /// is expected in the month after the period).
    pub month: String,
    pub open_deals: u64,
    pub pipeline: Option<f64>,
    pub expected: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Forecast {
    pub by_month: Vec<ForecastMonth>,
    /// Accounts per cluster vs capacity now and, at the observed movement rates (recorded
    /// runs), over the next quarter.
    pub capacity: Option<crate::capacity::CapacityGuidance>,
    pub notes: Vec<String>,
}

fn month_of(t: Instant) -> String {
    let d = t.date_string();
    d[..7].to_string()
}

/// Forecast of one group's open deals.
pub fn forecast(
    key: &str,
    acc: &GroupAcc,
    win: Option<(f64, [f64; 2])>,
    cycle_days: Option<f64>,
    p: &Period,
) -> Vec<ForecastMonth> {
    let Some(cycle) = cycle_days else {
        return Vec::new();
    };
    let next_month = Instant(p.to.0 + 1);
    let mut months: BTreeMap<String, (u64, f64, u64)> = BTreeMap::new();
    for d in &acc.open_deals {
        let due = Instant(d.created_at.0 + (cycle * MICROS_PER_DAY as f64) as i64);
        let m = month_of(if due <= p.to { next_month } else { due });
        let e = months.entry(m).or_default();
        e.0 += 1;
        if let Some(a) = d.amount {
            e.1 += a;
            e.2 += 1;
        }
    }
    months
        .into_iter()
        .map(|(month, (n, amount, with))| {
            let pipeline = (with > 0).then_some(amount);
            let scaled = |r: f64| pipeline.map(|v| round6(v * r));
            ForecastMonth {
                key: key.to_string(),
                month,
                open_deals: n,
                pipeline,
                expected: win.and_then(|(w, _)| scaled(w)),
                low: win.and_then(|(_, ci)| scaled(ci[0])),
                high: win.and_then(|(_, ci)| scaled(ci[1])),
            }
        })
        .collect()
}

/// `period` of analytics.json.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeriodOut {
    pub from: String,
    pub to: String,
    pub as_of: String,
}

/// `analytics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Analytics {
    pub period: PeriodOut,
    pub total: SegmentRow,
    pub by_cluster: Vec<Row>,
    pub by_tier: Vec<Row>,
    pub segments: Vec<SegmentRow>,
    pub migration: Option<crate::migration::Migration>,
    pub backtest: Option<serde_json::Value>,
    pub whitespace: Vec<Whitespace>,
    pub cross_sell: Option<crate::crosssell::CrossSell>,
    pub icp_discovery: Option<serde_json::Value>,
    pub forecast: Forecast,
    pub notes: Vec<String>,
}

/// Put it together. `groups` holds `all` first, then clusters, tiers, micro-segments and
/// segments in the order to report; `account_id` names whitespace accounts.
pub fn analyze(
    p: &Period,
    mut groups: Vec<Group>,
    cfg: &AnalyticsConfig,
    spend: Option<&[Spend]>,
    engagement_known: bool,
    account_id: &dyn Fn(AccountIdx) -> String,
) -> Analytics {
    let mut notes = Vec::new();
    let all_idx = groups
        .iter()
        .position(|g| g.kind == GroupKind::All)
        .expect("the `all` group");
    let total_revenue = groups[all_idx].acc.won_revenue();
    let overall_wr = groups[all_idx].acc.win_rate();
    let overall_cycle = {
        let mut c = groups[all_idx].acc.cycles.clone();
        stats::median(&mut c)
    };
    let mut by_cluster = Vec::new();
    let mut by_tier = Vec::new();
    let mut segments = Vec::new();
    let mut total = None;
    let mut whitespace = Vec::new();
    let mut by_month = Vec::new();
    for g in groups.iter_mut() {
        let key = g.key();
        let margin = cfg
            .margin_by_segment
            .get(&key)
            .or_else(|| cfg.margin_by_segment.get(&g.name))
            .copied()
            .unwrap_or(cfg.margin);
        let spent = spend_of(spend, g, p);
        let val = value(&g.acc, p, cfg, margin, spent);
        let growth = match (g.acc.won_revenue(), g.acc.prev_won_revenue()) {
            (Some(now), Some(before)) if before > 0.0 => Some(now / before - 1.0),
            _ => None,
        };
        let (recommendation, reasons) = recommend(&g.acc, &val, overall_wr, growth, cfg);
        let cycle = g.acc.median_cycle_days();
        let row_key = match g.kind {
            GroupKind::Cluster | GroupKind::Tier | GroupKind::All => g.name.clone(),
            _ => key.clone(),
        };
        let row = g.acc.row(&row_key, total_revenue);
        if matches!(g.kind, GroupKind::All | GroupKind::Cluster) {
            let win = row.win_rate.zip(row.win_rate_ci);
            by_month.extend(forecast(&row_key, &g.acc, win, cycle.or(overall_cycle), p));
        }
        match g.kind {
            GroupKind::Cluster => by_cluster.push(row.clone()),
            GroupKind::Tier => by_tier.push(row.clone()),
            _ => {}
        }
        let sr = SegmentRow {
            row: Row {
                key: key.clone(),
                ..row.clone()
            },
            kind: g.kind,
            description: g.description.clone(),
            version: g.version,
            new_customers: g.acc.new_customers,
            penetration: g.acc.penetration(),
            prev_won_revenue: g.acc.prev_won_revenue(),
            won_revenue_growth: growth,
            spend: spent,
            margin,
            clv: val.clv,
            cac: val.cac,
            ltv_cac: val.ltv_cac,
            payback_months: val.payback_months,
            attractiveness: ratio(row.win_rate, overall_wr),
            position: row.revenue_share,
            recommendation,
            reasons,
            buying_pattern: g.acc.buying_pattern(engagement_known),
        };
        if g.kind == GroupKind::All {
            total = Some(sr);
            continue;
        }
        whitespace.push(Whitespace {
            key: key.clone(),
            accounts: g.acc.whitespace,
            win_rate: row.win_rate,
            avg_won_deal: row.avg_won_deal,
            estimated_value: row
                .win_rate
                .zip(row.avg_won_deal)
                .map(|(w, a)| g.acc.whitespace as f64 * w * a),
            top_accounts: g
                .acc
                .whitespace_top
                .iter()
                .map(|(_, i)| account_id(*i))
                .collect(),
        });
        segments.push(sr);
    }
    if spend.is_none() {
        notes.push("no spend.csv: CAC, LTV:CAC and payback are null".into());
    }
    if cfg.clv == ClvMode::Annual && cfg.churn_rate.is_none() {
        notes.push("clv = \"annual\" without [analytics] churn_rate: CLV is null".into());
    }
    Analytics {
        period: PeriodOut {
            from: p.from.to_rfc3339(),
            to: p.to.to_rfc3339(),
            as_of: p.as_of.to_rfc3339(),
        },
        total: total.expect("the `all` group"),
        by_cluster,
        by_tier,
        segments,
        migration: None,
        backtest: None,
        whitespace,
        cross_sell: None,
        icp_discovery: None,
        forecast: Forecast {
            by_month,
            capacity: None,
            notes: vec![
                "expected = open pipeline × the group's win rate (low/high: its 95% interval); \
                 expected close = created + the group's median won cycle"
                    .into(),
            ],
        },
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::tests::{day, deal, period};
    use crate::perf::AccountDeals;
    use abm_core::DealOutcome::*;

    fn group(deals: &[Vec<abm_core::Deal>]) -> GroupAcc {
        let mut g = GroupAcc::default();
        let mut a = AccountDeals::default();
        for (i, d) in deals.iter().enumerate() {
            a.read(d, &period());
            g.add(&a, i as u32, 0.0);
        }
        g
    }

    #[test]
    fn spend_is_prorated_by_days_of_overlap() {
        let p = period(); // 2026-01-01 … 2026-03-31, 90 days
        let s = |a: &str, b: &str| Spend {
            start: day(a),
            end: day(b),
            segment: None,
            channel: Some("ads".into()),
            amount: 100.0,
        };
        assert_eq!(s("2026-01-01", "2026-03-31").in_period(&p), 100.0);
        // 10 days, 5 inside.
        assert!((s("2025-12-27", "2026-01-05").in_period(&p) - 50.0).abs() < 1e-9);
        assert_eq!(s("2026-04-01", "2026-04-30").in_period(&p), 0.0);
        assert_eq!(s("2026-02-01", "2026-01-01").in_period(&p), 0.0);
    }

    #[test]
    fn clv_cac_ltv_and_payback() {
        let p = period();
        // Two customers: one won 100 in the period (new), one 300 before it (and 100 now).
        let g = group(&[
            vec![deal(Won, "2026-01-01", Some("2026-01-11"), Some(100.0))],
            vec![
                deal(Won, "2025-06-01", Some("2025-07-01"), Some(300.0)),
                deal(Won, "2026-02-01", Some("2026-02-11"), Some(100.0)),
            ],
        ]);
        let cfg = AnalyticsConfig::default();
        let v = value(&g, &p, &cfg, 0.5, Some(90.0));
        // Observed: (100 + 300 + 100) / 2 × 0.5.
        assert_eq!(v.clv, Some(125.0));
        // One new customer: CAC = 90.
        assert_eq!(v.cac, Some(90.0));
        assert!((v.ltv_cac.unwrap() - 125.0 / 90.0).abs() < 1e-12);
        // Monthly margin revenue per customer: 200 / 2 × 0.5 / (90 / 30.4375).
        let monthly = 50.0 / (90.0 / DAYS_PER_MONTH);
        assert!((v.payback_months.unwrap() - 90.0 / monthly).abs() < 1e-9);
        // No spend: CAC, LTV:CAC, payback null; annual without churn: null CLV.
        let v = value(&g, &p, &cfg, 1.0, None);
        assert_eq!((v.cac, v.ltv_cac, v.payback_months), (None, None, None));
        let annual = AnalyticsConfig {
            clv: ClvMode::Annual,
            ..cfg.clone()
        };
        assert_eq!(value(&g, &p, &annual, 1.0, None).clv, None);
        let annual = AnalyticsConfig {
            churn_rate: Some(0.25),
            ..annual
        };
        let clv = value(&g, &p, &annual, 1.0, None).clv.unwrap();
        assert!((clv - 100.0 * 365.0 / 90.0 / 0.25).abs() < 1e-9, "{clv}");
        // No customers: CLV null; spend but no new customer: CAC null.
        let empty = group(&[vec![]]);
        let v = value(&empty, &p, &cfg, 1.0, Some(10.0));
        assert_eq!((v.clv, v.cac), (None, None));
    }

    fn closed(won: usize, lost: usize) -> GroupAcc {
        let mut v = Vec::new();
        for i in 0..won + lost {
            let out = if i < won { Won } else { Lost };
            v.push(vec![deal(
                out,
                "2026-01-01",
                Some("2026-02-01"),
                Some(10.0),
            )]);
        }
        group(&v)
    }

    #[test]
    fn recommendations_follow_the_thresholds() {
        let cfg = AnalyticsConfig::default();
        let none = Value {
            clv: None,
            cac: None,
            ltv_cac: None,
            payback_months: None,
        };
        // Too few closed deals, no customers among many accounts: enter.
        let mut g = closed(1, 1);
        g.accounts = 100;
        let (r, why) = recommend(&g, &none, Some(0.3), None, &cfg);
        assert_eq!(r, Recommendation::Enter, "{why:?}");
        // 0 of 40: exit (upper bound 8.8% < 10%).
        let g = closed(0, 40);
        let (r, why) = recommend(&g, &none, Some(0.3), None, &cfg);
        assert_eq!(r, Recommendation::Exit);
        assert!(why[0].contains("upper bound"), "{why:?}");
        // LTV:CAC below 1: exit.
        let g = closed(10, 10);
        let poor = Value {
            ltv_cac: Some(0.5),
            ..none
        };
        assert_eq!(
            recommend(&g, &poor, Some(0.3), None, &cfg).0,
            Recommendation::Exit
        );
        // Clearly above the overall rate (lower bound 29.9% ≥ 25%) and growing: grow.
        let (r, why) = recommend(&g, &none, Some(0.25), Some(0.2), &cfg);
        assert_eq!(r, Recommendation::Grow, "{why:?}");
        assert!(why.iter().any(|w| w.contains("grew 20.0%")), "{why:?}");
        // Above the overall rate, shrinking, well penetrated: maintain.
        assert_eq!(
            recommend(&g, &none, Some(0.25), Some(-0.2), &cfg).0,
            Recommendation::Maintain
        );
        // Above the overall rate but within the noise (lower bound 29.9% < 45%): maintain.
        assert_eq!(
            recommend(&g, &none, Some(0.45), Some(0.5), &cfg).0,
            Recommendation::Maintain
        );
        // Below the overall rate: maintain.
        assert_eq!(
            recommend(&g, &none, Some(0.6), Some(0.5), &cfg).0,
            Recommendation::Maintain
        );
        // Strong but few customers among many accounts: enter.
        let mut g = closed(10, 10);
        g.accounts = 1000;
        assert_eq!(
            recommend(&g, &none, Some(0.25), Some(-0.1), &cfg).0,
            Recommendation::Enter
        );
    }

    #[test]
    fn forecast_by_expected_close_month() {
        let p = period();
        let g = group(&[vec![
            // Created 2026-03-20 + 30 days → 2026-04-19.
            deal(Open, "2026-03-20", None, Some(100.0)),
            // Created 2026-01-01 + 30 → overdue: the month after the period.
            deal(Open, "2026-01-01", None, Some(50.0)),
            // Created 2026-03-31 + 30 → 2026-04-30; no amount.
            deal(Open, "2026-03-31", None, None),
        ]]);
        let f = forecast("all", &g, Some((0.5, [0.25, 0.75])), Some(30.0), &p);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].month, "2026-04");
        assert_eq!(f[0].open_deals, 3);
        assert_eq!(f[0].pipeline, Some(150.0));
        assert_eq!(
            (f[0].expected, f[0].low, f[0].high),
            (Some(75.0), Some(37.5), Some(112.5))
        );
        // No win rate: amounts, no expectation; no cycle: nothing to place.
        let f = forecast("all", &g, None, Some(60.0), &p);
        assert_eq!(
            f.iter().map(|m| m.month.as_str()).collect::<Vec<_>>(),
            ["2026-04", "2026-05"]
        );
        assert!(f.iter().all(|m| m.expected.is_none()));
        assert!(forecast("all", &g, None, None, &p).is_empty());
    }

    #[test]
    fn the_whole_analysis_names_nulls_and_keys() {
        let p = period();
        let mk = |name: &str, kind, acc: GroupAcc| Group {
            name: name.into(),
            kind,
            description: String::new(),
            version: None,
            acc,
        };
        let all = closed(3, 1);
        let groups = vec![
            mk("all", GroupKind::All, all.clone()),
            mk("active_focus", GroupKind::Cluster, all.clone()),
            mk("A", GroupKind::Tier, all),
            mk("empty", GroupKind::Segment, GroupAcc::default()),
        ];
        let a = analyze(&p, groups, &AnalyticsConfig::default(), None, false, &|i| {
            format!("acc-{i}")
        });
        assert_eq!(a.by_cluster[0].key, "active_focus");
        assert_eq!(a.by_tier[0].key, "A");
        let keys: Vec<&str> = a.segments.iter().map(|s| s.row.key.as_str()).collect();
        assert_eq!(keys, ["cluster:active_focus", "tier:A", "empty"]);
        let e = &a.segments[2];
        assert_eq!(
            (e.row.win_rate, e.clv, e.cac, e.row.revenue_share),
            (None, None, None, Some(0.0))
        );
        assert_eq!(a.total.row.win_rate, Some(0.75));
        assert_eq!(a.total.row.revenue_share, Some(1.0));
        let json = serde_json::to_value(&a).unwrap();
        for k in [
            "period",
            "by_cluster",
            "by_tier",
            "segments",
            "migration",
            "backtest",
            "whitespace",
            "cross_sell",
            "icp_discovery",
            "forecast",
        ] {
            assert!(json.get(k).is_some(), "{k}");
        }
        assert!(json["migration"].is_null() && json["segments"][2]["win_rate"].is_null());
        // No engagement data: the buying pattern's medians are null, never 0.
        assert!(json["total"]["buying_pattern"]["median_engaged_contacts"].is_null());
        assert!(json["segments"][0].get("version").is_none());
        assert_eq!(json["period"]["from"], "2026-01-01T00:00:00Z");
    }
}
