//! ICP scoring (SPEC §4.1): `score_account` with a per-criterion explanation.

use crate::account::{AccountRef, AccountSchema};
use crate::config::{Criterion, IcpConfig, MissingRule, Points, TierThresholds};
use crate::model::Tier;

/// Criteria resolved against an account schema.
#[derive(Debug, Clone)]
pub struct ScoringModel {
    criteria: Vec<(Criterion, Option<usize>)>,
    lowered: Vec<Vec<String>>,
    /// Points per lowered value, for graded `in` criteria (empty otherwise).
    graded: Vec<Vec<f64>>,
    /// Whether the input provides the criterion's field (a column of the accounts' schema): a
    /// criterion without data is left out of the points possible for every account.
    provided: Vec<bool>,
    missing_rule: MissingRule,
    /// The lowered values by position, for long lists (value maps widen a criterion to dozens
    /// of labels; the default industry and country are graded over dozens): one hash lookup
    /// instead of a scan.
    sets: Vec<Option<foldhash::HashMap<String, usize>>>,
    /// Each criterion's test in words ([`Self::test_text`]), written once per model when an
    /// explanation first asks (a run or a re-evaluation never does).
    tests: std::sync::OnceLock<Vec<String>>,
    pub tiers: TierThresholds,
    /// Points possible over the criteria whose field the input provides.
    pub possible: f64,
}

/// How one criterion entered an account's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriterionStatus {
    /// The account has a value: earned points of `possible`.
    Scored,
    /// Empty for this account and `missing = "zero"`: earned 0 of `possible`.
    MissingZero,
    /// Empty for this account and `missing = "neutral"`: left out of its points possible.
    MissingNeutral,
    /// No input provides the field: left out of every account's points possible.
    NoData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Input,
    Computed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CriterionResult {
    pub field: String,
    /// e.g. `industry in [software, fintech]`.
    pub test: String,
    /// The account's value; `None` when missing.
    pub value: Option<String>,
    pub earned: f64,
    /// What the criterion adds to this account's points possible (0 when left out).
    pub possible: f64,
    /// The criterion's own points (its largest band's for bands).
    pub points: f64,
    pub status: CriterionStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreResult {
    pub score: f64,
    pub score_source: Source,
    pub tier: Tier,
    pub tier_source: Source,
    /// Tier from the score, whatever the input says (for the conflict checkpoint).
    pub tier_from_score: Tier,
    /// Per-criterion results, when asked for (`detailed`).
    pub criteria: Vec<CriterionResult>,
    /// Fields the criteria need that the input has but this account leaves empty (enrichment
    /// can fill them). Fields no input provides are [`ScoringModel::without_data`].
    pub missing: Vec<String>,
}

impl ScoreResult {
    /// `85`, `72.5`: one decimal at most.
    pub fn score_text(&self) -> String {
        format_score(self.score)
    }
}

pub fn format_score(v: f64) -> String {
    let mut s = String::new();
    write_score(&mut s, v);
    s
}

/// [`format_score`] appended to `out`.
pub fn write_score(out: &mut String, v: f64) {
    use std::fmt::Write;
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        crate::time::push_padded(out, r as i64, 1);
    } else {
        let _ = write!(out, "{r:.1}");
    }
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

fn parse_num(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.replace([',', '_'], "")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

fn in_range(v: f64, min: Option<f64>, max: Option<f64>) -> bool {
    min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    let f = |v: f64| format_score(v);
    match (min, max) {
        (Some(a), Some(b)) => format!("{}–{}", f(a), f(b)),
        (Some(a), None) => format!("≥ {}", f(a)),
        (None, Some(b)) => format!("≤ {}", f(b)),
        (None, None) => "any".into(),
    }
}

impl ScoringModel {
    pub fn new(icp: &IcpConfig, schema: &AccountSchema) -> ScoringModel {
        let criteria: Vec<_> = icp
            .criteria
            .iter()
            .map(|c| (c.clone(), schema.index_of(c.field())))
            .collect();
        let lowered: Vec<Vec<String>> = icp
            .criteria
            .iter()
            .map(|c| match c {
                Criterion::In {
                    points: Points::PerValue(m),
                    ..
                } => m.keys().map(|v| norm(v)).collect(),
                Criterion::In { values, .. } | Criterion::Contains { values, .. } => {
                    values.iter().map(|v| norm(v)).collect()
                }
                Criterion::Equals { value, .. } => vec![norm(value)],
                _ => vec![],
            })
            .collect();
        let graded = icp
            .criteria
            .iter()
            .map(|c| match c {
                Criterion::In {
                    points: Points::PerValue(m),
                    ..
                } => m.values().copied().collect(),
                _ => vec![],
            })
            .collect();
        let provided: Vec<bool> = criteria.iter().map(|(_, col)| col.is_some()).collect();
        // Long lists (a graded default, value maps' labels) are looked up by hash: the
        // lowered value → its position (the first, when a value repeats).
        let sets: Vec<Option<foldhash::HashMap<String, usize>>> = lowered
            .iter()
            .map(|l: &Vec<String>| {
                (l.len() > 8).then(|| {
                    let mut m = foldhash::HashMap::default();
                    for (k, v) in l.iter().enumerate() {
                        m.entry(v.clone()).or_insert(k);
                    }
                    m
                })
            })
            .collect();
        ScoringModel {
            tests: std::sync::OnceLock::new(),
            possible: icp
                .criteria
                .iter()
                .zip(&provided)
                .filter(|(_, p)| **p)
                .map(|(c, _)| c.possible())
                .sum(),
            criteria,
            sets,
            lowered,
            graded,
            provided,
            missing_rule: icp.missing,
            tiers: icp.tiers.clone(),
        }
    }

    /// Fields of criteria that no input provides (each once, in criteria order): left out of
    /// the points possible for every account.
    pub fn without_data(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ((c, _), p) in self.criteria.iter().zip(&self.provided) {
            if !p && !out.iter().any(|f| f == c.field()) {
                out.push(c.field().to_string());
            }
        }
        out
    }

    /// The highest score an account can reach with the data the input provides: 100 when any
    /// criterion has data, else 0.
    pub fn has_data(&self) -> bool {
        self.possible > 0.0
    }

    fn numeric(account: &AccountRef<'_>, field: &str, col: Option<usize>) -> Option<f64> {
        let f = account.firmographics();
        match field {
            "employees" => f.employees,
            "annual_revenue" => f.annual_revenue,
            "founded_year" => f.founded_year.map(|v| v as f64),
            _ => col.and_then(|c| parse_num(account.value(c))),
        }
    }

    /// Whether any criterion is configured.
    pub fn is_empty(&self) -> bool {
        self.criteria.is_empty()
    }

    /// Whether the (trimmed) text equals one of the criterion's lowered values, ignoring case;
    /// allocation-free for ASCII text (the same answer as comparing `norm(text)`).
    fn matches(&self, i: usize, text: &str) -> bool {
        self.position(i, text).is_some()
    }

    /// Which of the criterion's lowered values the text equals (case-insensitive): by hash for
    /// a long list, else by scanning it.
    fn position(&self, i: usize, text: &str) -> Option<usize> {
        if let (Some(set), true) = (&self.sets[i], text.is_ascii() && text.len() <= 64) {
            if !text.bytes().any(|b| b.is_ascii_uppercase()) {
                return set.get(text).copied();
            }
            let mut buf = [0u8; 64];
            let low = &mut buf[..text.len()];
            low.copy_from_slice(text.as_bytes());
            low.make_ascii_lowercase();
            // SAFETY: ASCII bytes, lowered, are ASCII.
            return set
                .get(unsafe { std::str::from_utf8_unchecked(low) })
                .copied();
        }
        if text.is_ascii() {
            self.lowered[i]
                .iter()
                .position(|v| v.eq_ignore_ascii_case(text))
        } else {
            let t = norm(text);
            self.lowered[i].iter().position(|v| *v == t)
        }
    }

    /// Score every criterion. With `detailed`, each criterion's result (its test in words and
    /// the account's value) is listed; without, only the score and the missing fields are
    /// computed (no allocation unless a field is missing).
    pub fn criteria_with(
        &self,
        account: &AccountRef<'_>,
        detailed: bool,
    ) -> (f64, Vec<CriterionResult>, Vec<String>) {
        let mut earned_total = 0.0;
        let mut possible = self.possible;
        let mut out = Vec::with_capacity(if detailed { self.criteria.len() } else { 0 });
        let mut missing = Vec::new();
        for (i, (c, col)) in self.criteria.iter().enumerate() {
            let field = c.field();
            if !self.provided[i] {
                if detailed {
                    out.push(CriterionResult {
                        field: field.to_string(),
                        test: self.test(i),
                        value: None,
                        earned: 0.0,
                        possible: 0.0,
                        points: c.possible(),
                        status: CriterionStatus::NoData,
                    });
                }
                continue;
            }
            let text = col.map(|c| account.value(c).trim()).unwrap_or("");
            let (present, earned, number) = self.evaluate(i, account, text);
            let status = if present {
                CriterionStatus::Scored
            } else {
                missing.push(field.to_string());
                match self.missing_rule {
                    MissingRule::Zero => CriterionStatus::MissingZero,
                    MissingRule::Neutral => {
                        possible -= c.possible();
                        CriterionStatus::MissingNeutral
                    }
                }
            };
            earned_total += earned;
            if detailed {
                let value = match c {
                    Criterion::Range { .. } | Criterion::Bands { .. } => number.map(format_score),
                    _ => present.then(|| text.to_string()),
                };
                out.push(CriterionResult {
                    field: field.to_string(),
                    test: self.test(i),
                    value,
                    earned,
                    possible: if status == CriterionStatus::MissingNeutral {
                        0.0
                    } else {
                        c.possible()
                    },
                    points: c.possible(),
                    status,
                });
            }
        }
        let score = if possible > 0.0 {
            earned_total / possible * 100.0
        } else {
            0.0
        };
        (score, out, missing)
    }

    /// The points each criterion earns, in the config's order, into `out` (cleared first).
    pub fn points_into(&self, account: &AccountRef<'_>, out: &mut Vec<f64>) {
        out.clear();
        for (i, (_, col)) in self.criteria.iter().enumerate() {
            let text = col.map(|c| account.value(c).trim()).unwrap_or("");
            out.push(self.evaluate(i, account, text).1);
        }
    }

    /// Criterion `i` on one account: (value present, points earned, the numeric value).
    fn evaluate(&self, i: usize, account: &AccountRef<'_>, text: &str) -> (bool, f64, Option<f64>) {
        let (c, col) = &self.criteria[i];
        let field = c.field();
        match c {
            Criterion::In { points, .. } => {
                let earned = match points {
                    _ if text.is_empty() => 0.0,
                    Points::Flat(p) => {
                        if self.matches(i, text) {
                            *p
                        } else {
                            0.0
                        }
                    }
                    Points::PerValue(_) => {
                        self.position(i, text).map_or(0.0, |k| self.graded[i][k])
                    }
                };
                (!text.is_empty(), earned, None)
            }
            Criterion::Equals { points, .. } => {
                let hit = !text.is_empty() && self.matches(i, text);
                (!text.is_empty(), if hit { *points } else { 0.0 }, None)
            }
            Criterion::Contains { points, .. } => {
                let hit = text.split(';').any(|item| self.matches(i, item.trim()));
                (!text.is_empty(), if hit { *points } else { 0.0 }, None)
            }
            Criterion::Range {
                min, max, points, ..
            } => {
                let v = Self::numeric(account, field, *col);
                let earned = match v {
                    Some(v) if in_range(v, *min, *max) => *points,
                    _ => 0.0,
                };
                (v.is_some(), earned, v)
            }
            Criterion::Bands { bands, .. } => {
                let v = Self::numeric(account, field, *col);
                let earned = v
                    .and_then(|v| bands.iter().find(|b| in_range(v, b.min, b.max)))
                    .map(|b| b.points)
                    .unwrap_or(0.0);
                (v.is_some(), earned, v)
            }
        }
    }

    /// Score every criterion, each listed (see [`Self::criteria_with`]).
    pub fn criteria(&self, account: &AccountRef<'_>) -> (f64, Vec<CriterionResult>, Vec<String>) {
        self.criteria_with(account, true)
    }

    /// Criterion `i`'s test in words.
    fn test(&self, i: usize) -> String {
        let tests = self.tests.get_or_init(|| {
            self.criteria
                .iter()
                .map(|(c, _)| Self::test_text(c))
                .collect()
        });
        tests[i].clone()
    }

    /// A criterion's test in words: `industry in [software, fintech]`.
    pub(crate) fn test_text(c: &Criterion) -> String {
        let field = c.field();
        match c {
            Criterion::In {
                points: Points::PerValue(m),
                ..
            } => {
                let v: Vec<String> = m
                    .iter()
                    .map(|(k, p)| format!("{k}: {}", format_score(*p)))
                    .collect();
                format!("{field} graded [{}]", v.join(", "))
            }
            Criterion::In { values, .. } => format!("{field} in [{}]", values.join(", ")),
            Criterion::Equals { value, .. } => format!("{field} = {value}"),
            Criterion::Contains { values, .. } => {
                format!("{field} contains any of [{}]", values.join(", "))
            }
            Criterion::Range { min, max, .. } => format!("{field} {}", range_text(*min, *max)),
            Criterion::Bands { bands, .. } => {
                let desc: Vec<String> = bands
                    .iter()
                    .map(|b| format!("{}: {}", range_text(b.min, b.max), format_score(b.points)))
                    .collect();
                format!("{field} bands [{}]", desc.join(", "))
            }
        }
    }
}

/// Score an account: the input's `icp_score`/`icp_tier` win when present (the seed's upstream
/// `account_scores`); otherwise the criteria decide. `detailed` lists each criterion's result
/// (`ScoreResult::criteria`), even when the input carries a score (for `abm explain`).
pub fn score_account(
    model: &ScoringModel,
    account: &AccountRef<'_>,
    detailed: bool,
) -> ScoreResult {
    let f = account.firmographics();
    let (score, score_source, criteria, missing) = match f.icp_score {
        Some(s) if !detailed => (s, Source::Input, Vec::new(), Vec::new()),
        Some(s) => {
            let (_, c, m) = model.criteria(account);
            (s, Source::Input, c, m)
        }
        None => {
            let (s, c, m) = model.criteria_with(account, detailed);
            (s, Source::Computed, c, m)
        }
    };
    let tier_from_score = model.tiers.tier_of(score);
    let (tier, tier_source) = match f.icp_tier {
        Some(t) => (t, Source::Input),
        None => (tier_from_score, Source::Computed),
    };
    ScoreResult {
        score,
        score_source,
        tier,
        tier_source,
        tier_from_score,
        criteria,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountTable, Firmographics};
    use crate::config::Config;

    fn table() -> AccountTable {
        let schema = AccountSchema::new(
            ["industry", "country", "tech_stack", "segment"]
                .iter()
                .map(|s| s.to_string()),
        );
        AccountTable::new(schema)
    }

    #[test]
    fn full_fit_scores_100_and_lists_every_criterion() {
        let mut t = table();
        let f = Firmographics {
            employees: Some(1000.0),
            annual_revenue: Some(50e6),
            ..Default::default()
        };
        t.push(["A1", "Software", "us", "Snowflake;dbt", "x"], &f, 2);
        let m = ScoringModel::new(&Config::default().icp, t.schema());
        let r = score_account(&m, &t.get(0), true);
        assert_eq!(r.score, 100.0);
        assert_eq!((r.tier, r.score_source), (Tier::A, Source::Computed));
        assert_eq!(r.criteria.len(), 5);
        assert!(r.missing.is_empty());
        assert!(r.criteria.iter().all(|c| c.earned == c.possible));
    }

    /// Issue 13: criteria over fields the input does not have (employees, annual_revenue
    /// here) are left out of the points possible; an empty field is neutral by default.
    #[test]
    fn missing_fields_are_neutral_and_fields_without_data_left_out() {
        let mut t = table();
        t.push(["A1", "software", "", "", ""], &Firmographics::default(), 2);
        t.push(["A2", "mining", "US", "", ""], &Firmographics::default(), 3);
        let m = ScoringModel::new(&Config::default().icp, t.schema());
        assert_eq!(m.without_data(), vec!["employees", "annual_revenue"]);
        assert_eq!(m.possible, 55.0);
        let r = score_account(&m, &t.get(0), false);
        assert_eq!(r.score, 100.0);
        assert_eq!(r.tier, Tier::A);
        assert_eq!(r.missing, vec!["country", "tech_stack"]);
        // mining (0 of 30) in the US (15 of 15); tech_stack empty: 15 of 45.
        let r = score_account(&m, &t.get(1), true);
        assert_eq!(format_score(r.score), "33.3");
        let st: Vec<_> = r.criteria.iter().map(|c| c.status).collect();
        assert_eq!(
            st,
            vec![
                CriterionStatus::Scored,
                CriterionStatus::NoData,
                CriterionStatus::NoData,
                CriterionStatus::Scored,
                CriterionStatus::MissingNeutral,
            ]
        );
        assert_eq!(r.criteria.iter().map(|c| c.possible).sum::<f64>(), 45.0);
    }

    #[test]
    fn missing_zero_earns_nothing_of_its_points() {
        let mut t = table();
        t.push(["A1", "software", "", "", ""], &Firmographics::default(), 2);
        let mut cfg = Config::default();
        cfg.icp.missing = MissingRule::Zero;
        let m = ScoringModel::new(&cfg.icp, t.schema());
        let r = score_account(&m, &t.get(0), true);
        // software 30 of 55 (country and tech_stack empty: 0 of 25; no data for employees,
        // annual_revenue).
        assert_eq!(format_score(r.score), "54.5");
        assert_eq!(r.missing, vec!["country", "tech_stack"]);
        assert_eq!(r.criteria[3].status, CriterionStatus::MissingZero);
        assert_eq!(r.criteria[3].possible, 15.0);
    }

    #[test]
    fn graded_in_gives_points_per_value() {
        let cfg = Config::from_toml(
            r#"
[[icp.criteria]]
kind = "in"
field = "segment"
points = { paid_search = 10, Organic = 8, email = 2 }
"#,
        )
        .unwrap();
        let mut t = table();
        for (i, v) in ["paid_search", "organic", "EMAIL", "tv", ""]
            .iter()
            .enumerate()
        {
            t.push(["A", "", "", "", v], &Firmographics::default(), i as u64);
        }
        let m = ScoringModel::new(&cfg.icp, t.schema());
        let scores: Vec<String> = (0..5)
            .map(|i| format_score(score_account(&m, &t.get(i), false).score))
            .collect();
        // Out of the largest (10); an empty value is neutral (left out: 0 of 0 → 0).
        assert_eq!(scores, ["100", "80", "20", "0", "0"]);
        let r = score_account(&m, &t.get(1), true);
        assert_eq!(
            r.criteria[0].test,
            "segment graded [Organic: 8, email: 2, paid_search: 10]"
        );
        // A flat `in` still parses and serializes as before; the graded defaults round-trip.
        let mut flat = Config::default();
        flat.icp.criteria[0] = Criterion::In {
            field: "industry".into(),
            values: vec!["software".into()],
            points: 30.0.into(),
        };
        let text = toml::to_string(&flat).unwrap();
        assert!(text.contains("points = 30.0"), "{text}");
        assert_eq!(Config::from_toml(&text).unwrap(), flat);
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
    }

    #[test]
    fn no_criterion_with_data_scores_zero() {
        let t = AccountTable::new(AccountSchema::new(["name".to_string()]));
        let m = ScoringModel::new(&Config::default().icp, t.schema());
        assert!(!m.has_data());
        assert_eq!(m.without_data().len(), 5);
    }

    #[test]
    fn bands_take_the_first_matching_band() {
        let f = Firmographics {
            employees: Some(100.0),
            annual_revenue: Some(2e9),
            ..Default::default()
        };
        let schema = AccountSchema::new(
            [
                "industry",
                "employees",
                "annual_revenue",
                "country",
                "tech_stack",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut t = AccountTable::new(schema);
        t.push(["A1", "mining", "100", "2000000000", "BR", "x"], &f, 2);
        let m = ScoringModel::new(&Config::default().icp, t.schema());
        let r = score_account(&m, &t.get(0), true);
        assert_eq!(r.criteria[1].earned, 15.0);
        assert_eq!(r.criteria[2].earned, 10.0);
        assert_eq!(r.score, 25.0);
    }

    #[test]
    fn input_score_and_tier_win() {
        let mut t = table();
        let f = Firmographics {
            icp_score: Some(70.0),
            icp_tier: Some(Tier::A),
            ..Default::default()
        };
        t.push(["A1", "", "", "", ""], &f, 2);
        let m = ScoringModel::new(&Config::default().icp, t.schema());
        let r = score_account(&m, &t.get(0), false);
        assert_eq!(
            (r.score, r.tier, r.tier_from_score),
            (70.0, Tier::A, Tier::B)
        );
        assert_eq!(r.tier_source, Source::Input);
        assert!(r.criteria.is_empty());
        assert_eq!(score_account(&m, &t.get(0), true).criteria.len(), 5);
    }

    #[test]
    fn custom_fields_equals_and_range() {
        let mut cfg = Config::default();
        cfg.icp.criteria = vec![
            Criterion::Equals {
                field: "segment".into(),
                value: "Enterprise".into(),
                points: 1.0,
            },
            Criterion::Range {
                field: "tech_stack".into(),
                min: Some(1.0),
                max: None,
                points: 1.0,
            },
            Criterion::Range {
                field: "nonexistent".into(),
                min: None,
                max: Some(5.0),
                points: 2.0,
            },
        ];
        let mut t = table();
        t.push(
            ["A1", "", "", "3", " enterprise "],
            &Firmographics::default(),
            2,
        );
        let m = ScoringModel::new(&cfg.icp, t.schema());
        let r = score_account(&m, &t.get(0), false);
        // `nonexistent` is no column: left out of the points possible.
        assert_eq!(r.score, 100.0);
        assert!(r.missing.is_empty());
        assert_eq!(m.without_data(), vec!["nonexistent"]);
        assert_eq!(format_score(72.46), "72.5");
        assert_eq!(format_score(80.0), "80");
    }

    #[test]
    fn scores_are_written_with_at_most_one_decimal() {
        for (v, want) in [
            (38.0, "38"),
            (38.25, "38.3"),
            (100.0, "100"),
            (0.0, "0"),
            (-0.0, "0"),
            (66.66, "66.7"),
            (99.96, "100"),
            (f64::NAN, "NaN"),
        ] {
            let mut s = String::new();
            write_score(&mut s, v);
            assert_eq!(s, want, "{v}");
        }
    }
}
