//! Reading real export files: value maps (`[values]`, with built-in ones for HubSpot and
//! Salesforce labels and country spellings), event-type synonyms, date formats, numbers with
//! thousands separators and currency symbols, and deal outcomes told by the stage. Everything
//! here is on the slow path: a row the fast paths read is never looked at again.

use crate::columns::FileKind;
use abm_core::config::Criterion;
use abm_core::inputs::DealStages;
use abm_core::rules::{Code, Rules};
use abm_core::{Config, DealOutcome, Instant};
use std::collections::BTreeMap;

/// The event type that accepts a row and counts it for nothing (a rep's note or task).
pub const IGNORE: &str = "ignore";

/// HubSpot's industry enumeration (internal value, label) and Salesforce's industry picklist,
/// each with the default vocabulary's industry it means (`None`: no default industry; the
/// label stays as it is and can be named in criteria as it is).
pub const INDUSTRIES: &[(&str, &str, &str)] = &[
    ("COMPUTER_SOFTWARE", "Computer Software", "software"),
    (
        "INFORMATION_TECHNOLOGY_AND_SERVICES",
        "Information Technology and Services",
        "technology",
    ),
    ("INTERNET", "Internet", "technology"),
    ("COMPUTER_HARDWARE", "Computer Hardware", "technology"),
    ("COMPUTER_NETWORKING", "Computer Networking", "technology"),
    ("SEMICONDUCTORS", "Semiconductors", "technology"),
    (
        "COMPUTER_NETWORK_SECURITY",
        "Computer & Network Security",
        "cybersecurity",
    ),
    ("FINANCIAL_SERVICES", "Financial Services", "financials"),
    ("CAPITAL_MARKETS", "Capital Markets", "financials"),
    (
        "INVESTMENT_MANAGEMENT",
        "Investment Management",
        "financials",
    ),
    (
        "VENTURE_CAPITAL_PRIVATE_EQUITY",
        "Venture Capital & Private Equity",
        "financials",
    ),
    ("BANKING", "Banking", "banking"),
    ("INVESTMENT_BANKING", "Investment Banking", "banking"),
    ("INSURANCE", "Insurance", "insurance"),
    (
        "HOSPITAL_HEALTH_CARE",
        "Hospital & Health Care",
        "healthcare",
    ),
    ("MEDICAL_DEVICES", "Medical Devices", "healthcare"),
    ("MEDICAL_PRACTICE", "Medical Practice", "healthcare"),
    ("PHARMACEUTICALS", "Pharmaceuticals", "healthcare"),
    // Salesforce's Industry picklist.
    ("Finance", "Finance", "financials"),
    ("Technology", "Technology", "technology"),
    ("Healthcare", "Healthcare", "healthcare"),
];

/// Country spellings → ISO 3166 alpha-2 code.
pub const COUNTRIES: &[(&str, &str)] = &[
    ("United States", "US"),
    ("United States of America", "US"),
    ("USA", "US"),
    ("U.S.", "US"),
    ("U.S.A.", "US"),
    ("America", "US"),
    ("United Kingdom", "GB"),
    ("UK", "GB"),
    ("U.K.", "GB"),
    ("Great Britain", "GB"),
    ("Britain", "GB"),
    ("England", "GB"),
    ("Scotland", "GB"),
    ("Wales", "GB"),
    ("Germany", "DE"),
    ("Deutschland", "DE"),
    ("France", "FR"),
    ("Netherlands", "NL"),
    ("The Netherlands", "NL"),
    ("Holland", "NL"),
    ("Sweden", "SE"),
    ("Canada", "CA"),
    ("Australia", "AU"),
    ("Ireland", "IE"),
    ("Spain", "ES"),
    ("Italy", "IT"),
    ("Switzerland", "CH"),
    ("Austria", "AT"),
    ("Belgium", "BE"),
    ("Denmark", "DK"),
    ("Norway", "NO"),
    ("Finland", "FI"),
    ("Poland", "PL"),
    ("Portugal", "PT"),
    ("India", "IN"),
    ("Japan", "JP"),
    ("China", "CN"),
    ("Brazil", "BR"),
    ("Mexico", "MX"),
    ("Singapore", "SG"),
    ("New Zealand", "NZ"),
    ("Israel", "IL"),
    ("South Africa", "ZA"),
];

/// CRM activity types → the default event vocabulary (`ignore`: accepted, counts for nothing).
/// HubSpot engagement types (`MEETING`, `CALL`, `EMAIL`, `INCOMING_EMAIL`, `NOTE`, `TASK`) and
/// Salesforce Task/Event `Type` and subtypes (`Call`, `Email`, `Meeting`, `Other`, …).
pub const EVENT_TYPES: &[(&str, &str)] = &[
    ("MEETING", "meeting"),
    ("Meeting Booked", "meeting"),
    ("CALL", "outreach_response"),
    ("INCOMING_EMAIL", "email_reply"),
    ("EMAIL", IGNORE),
    ("FORWARDED_EMAIL", IGNORE),
    ("NOTE", IGNORE),
    ("TASK", IGNORE),
    ("TODO", IGNORE),
    ("Other", IGNORE),
    ("ListEmail", IGNORE),
    ("Cadence", IGNORE),
    ("LinkedIn", IGNORE),
    ("Send Letter", IGNORE),
    ("Send Quote", IGNORE),
    ("Webinar", "webinar_attended"),
    ("Demo", "demo"),
    ("Page View", "website_visit"),
    ("Form Submission", "content_download"),
];

fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The value map of `field` (user entries over the built-in ones), keys folded to lower case.
pub fn value_map(config: &Config, field: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if config.inputs.builtin_values {
        match field {
            "industry" => {
                for (code, label, to) in INDUSTRIES {
                    m.insert(fold(code), to.to_string());
                    m.insert(fold(label), to.to_string());
                }
            }
            "country" => {
                for (from, to) in COUNTRIES {
                    m.insert(fold(from), to.to_string());
                }
            }
            "event_types" => {
                for (from, to) in EVENT_TYPES {
                    m.insert(fold(from), to.to_string());
                }
            }
            _ => {}
        }
    }
    if let Some(user) = config.values.get(field) {
        for (from, to) in user {
            m.insert(fold(from), to.clone());
        }
    }
    m
}

/// The config with every value map applied to the criteria and verticals: a criterion value
/// (or vertical key) also matches every label that maps to it, and every label that maps to
/// the same value as it. Scoring reads the file's values as they are, so the bulk path costs
/// nothing more; outputs show the values as in the file.
pub fn expand_values(config: &Config) -> Config {
    let mut out = config.clone();
    let mut fields: Vec<String> = config
        .values
        .keys()
        .filter(|k| *k != "event_types")
        .cloned()
        .collect();
    if config.inputs.builtin_values {
        fields.extend(["industry".to_string(), "country".to_string()]);
    }
    fields.sort();
    fields.dedup();
    for field in fields {
        let map = value_map(config, &field);
        if map.is_empty() {
            continue;
        }
        // Each class: a target and every label that maps to it (lower case).
        let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (from, to) in &map {
            let c = classes.entry(fold(to)).or_default();
            c.push(from.clone());
        }
        let class_of = |v: &str| -> Option<(&String, &Vec<String>)> {
            let v = fold(v);
            classes
                .get_key_value(&v)
                .or_else(|| map.get(&v).and_then(|t| classes.get_key_value(&fold(t))))
        };
        let widen = |values: &mut Vec<String>| {
            let mut add = Vec::new();
            for v in values.iter() {
                if let Some((target, labels)) = class_of(v) {
                    add.push(target.clone());
                    add.extend(labels.iter().cloned());
                }
            }
            for a in add {
                if !values.iter().any(|v| v.eq_ignore_ascii_case(&a)) {
                    values.push(a);
                }
            }
        };
        // Graded points: every label of a listed value's class earns that value's points (the
        // most of the class's listed values); a label listed itself keeps its own points.
        let widen_points = |m: &mut BTreeMap<String, f64>| {
            let mut add: BTreeMap<String, f64> = BTreeMap::new();
            for (v, p) in m.iter() {
                if let Some((target, labels)) = class_of(v) {
                    for l in std::iter::once(target).chain(labels) {
                        let e = add.entry(fold(l)).or_insert(*p);
                        *e = e.max(*p);
                    }
                }
            }
            for (label, p) in add {
                if !m.keys().any(|k| k.eq_ignore_ascii_case(&label)) {
                    m.insert(label, p);
                }
            }
        };
        for c in &mut out.icp.criteria {
            match c {
                Criterion::In {
                    field: f,
                    values,
                    points,
                } if *f == field => {
                    widen(values);
                    if let abm_core::config::Points::PerValue(m) = points {
                        widen_points(m);
                    }
                }
                Criterion::Contains {
                    field: f, values, ..
                } if *f == field => widen(values),
                Criterion::Equals {
                    field: f,
                    value,
                    points,
                } if *f == field && class_of(value).is_some() => {
                    let mut values = vec![value.clone()];
                    widen(&mut values);
                    *c = Criterion::In {
                        field: f.clone(),
                        values,
                        points: abm_core::config::Points::Flat(*points),
                    };
                }
                _ => {}
            }
        }
        if field == "industry" {
            let verticals: Vec<(String, String)> = out
                .verticals
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (industry, vertical) in verticals {
                if let Some((target, labels)) = class_of(&industry) {
                    for l in std::iter::once(target).chain(labels) {
                        out.verticals
                            .entry(l.to_lowercase())
                            .or_insert_with(|| vertical.clone());
                    }
                }
            }
        }
    }
    out
}

/// An event type neither the vocabulary nor `[values.event_types]` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownType;

/// How one input file's values are read beyond the canonical forms.
#[derive(Debug, Clone, Default)]
pub struct InputRules {
    /// Per canonical slot of the file: the date format to try.
    pub date_formats: Vec<Option<String>>,
    /// Event-type synonyms (engagement files), lower-case key → vocabulary type or `ignore`.
    pub event_types: BTreeMap<String, String>,
    pub deals: DealStages,
}

impl InputRules {
    /// The rules of a file of `kind` whose name's stem is `stem`: a date format keyed by the
    /// stem (`orders`, `orders.occurred_at`) wins over one keyed by the kind (`engagement`).
    pub fn of(config: &Config, kind: FileKind, stem: &str) -> InputRules {
        let canonical = kind.canonical();
        let kind_stem = kind.default_stem();
        let f = &config.inputs.date_formats;
        let date_formats = canonical
            .iter()
            .map(|c| {
                f.get(&format!("{stem}.{c}"))
                    .or_else(|| f.get(stem))
                    .or_else(|| f.get(&format!("{kind_stem}.{c}")))
                    .or_else(|| f.get(kind_stem))
                    .cloned()
            })
            .collect();
        InputRules {
            date_formats,
            event_types: if kind == FileKind::Engagement {
                value_map(config, "event_types")
            } else {
                BTreeMap::new()
            },
            deals: config.inputs.deals.clone(),
        }
    }

    /// The code of event type `ty` as the slow path reads it: exact, then a synonym, then the
    /// vocabulary ignoring case. `Ok(None)`: a type mapped to `ignore`.
    pub fn event_code(&self, rules: &Rules, ty: &[u8]) -> Result<Option<Code>, UnknownType> {
        if let Some(c) = rules.events.lookup(ty) {
            return Ok(Some(c));
        }
        let t = fold(std::str::from_utf8(ty).map_err(|_| UnknownType)?);
        let target = self.event_types.get(&t).map(String::as_str).unwrap_or(&t);
        if target.eq_ignore_ascii_case(IGNORE) {
            return Ok(None);
        }
        lookup_ci(&rules.events, target)
            .map(Some)
            .ok_or(UnknownType)
    }

    /// The outcome of a deal: its `outcome` value, else `is_closed`/`is_won`, else its stage
    /// (per pipeline, then `[inputs.deals]`); stages not listed are open.
    pub fn deal_outcome(
        &self,
        outcome: Option<&str>,
        is_closed: Option<&str>,
        is_won: Option<&str>,
        stage: &str,
        pipeline: &str,
    ) -> Result<DealOutcome, String> {
        if let Some(o) = outcome.filter(|o| !o.trim().is_empty()) {
            return DealOutcome::parse(o)
                .ok_or_else(|| format!("outcome must be open, won or lost, not {o:?}"));
        }
        if let Some(c) = is_closed.filter(|c| !c.trim().is_empty()) {
            let closed = boolean(c).ok_or_else(|| format!("is_closed: not true/false: {c:?}"))?;
            if !closed {
                return Ok(DealOutcome::Open);
            }
            let won = match is_won.filter(|w| !w.trim().is_empty()) {
                Some(w) => boolean(w).ok_or_else(|| format!("is_won: not true/false: {w:?}"))?,
                None => false,
            };
            return Ok(if won {
                DealOutcome::Won
            } else {
                DealOutcome::Lost
            });
        }
        let s = stage.trim();
        let (won, lost) = match self
            .deals
            .pipelines
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(pipeline.trim()))
        {
            Some((_, p)) => (&p.won_stages, &p.lost_stages),
            None => (&self.deals.won_stages, &self.deals.lost_stages),
        };
        if won.iter().any(|w| w.trim().eq_ignore_ascii_case(s)) {
            Ok(DealOutcome::Won)
        } else if lost.iter().any(|l| l.trim().eq_ignore_ascii_case(s)) {
            Ok(DealOutcome::Lost)
        } else {
            Ok(DealOutcome::Open)
        }
    }
}

/// `true`/`false`, `1`/`0`, `yes`/`no` (any case).
pub fn boolean(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "t" => Some(true),
        "false" | "0" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// A vocabulary entry ignoring ASCII case.
pub fn lookup_ci(v: &abm_core::rules::Vocabulary, s: &str) -> Option<Code> {
    v.lookup(s.as_bytes()).or_else(|| {
        v.names()
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s.trim()))
            .map(|c| c as Code)
    })
}

/// Unambiguous forms beyond the canonical ones, tried when no format is configured.
const BUILTIN_DATE_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
];

/// A date or timestamp in `format` (strftime; a timestamp with an offset is converted to UTC,
/// one without is read as UTC), else in one of the unambiguous built-in forms.
pub fn parse_date(text: &str, format: Option<&str>) -> Option<Instant> {
    let t = text.trim();
    match format {
        Some(f) => parse_with(t, f),
        None => BUILTIN_DATE_FORMATS
            .iter()
            .find_map(|f| parse_with(t, f))
            .or_else(|| {
                // `2024-03-05T10:22:00.000+0000` (Salesforce's Data Loader).
                jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", t)
                    .and_then(|p| p.to_timestamp())
                    .ok()
                    .map(|ts| Instant(ts.as_microsecond()))
            }),
    }
}

fn parse_with(t: &str, format: &str) -> Option<Instant> {
    let parsed = jiff::fmt::strtime::parse(format, t).ok()?;
    if let Ok(ts) = parsed.to_timestamp() {
        return Some(Instant(ts.as_microsecond()));
    }
    let dt = parsed.to_datetime().ok().or_else(|| {
        parsed
            .to_date()
            .ok()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    })?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(Instant(ts.as_microsecond()))
}

/// A number as people write it: an optional sign, currency symbol or code (`$`, `€`, `£`,
/// `¥`, `USD`, `EUR`, `GBP`) before or after, thousands separators (`,`, space, no-break space,
/// `'`, `_`) only between groups of exactly three digits, and `.` as the decimal point.
/// `1,2` or `1,20` (which some locales mean as a decimal) is rejected with the reason.
pub fn lenient_number(t: &str) -> Result<f64, String> {
    let mut s = t.trim();
    let neg = s.starts_with('-') || (s.starts_with('(') && s.ends_with(')'));
    if s.starts_with('(') && s.ends_with(')') {
        s = &s[1..s.len() - 1];
    }
    s = s.trim_start_matches('-').trim();
    for sym in ["$", "€", "£", "¥", "USD", "EUR", "GBP", "US$"] {
        if let Some(r) = s.strip_prefix(sym) {
            s = r.trim();
        }
        if let Some(r) = s.strip_suffix(sym) {
            s = r.trim();
        }
    }
    if s.starts_with('-') && !neg {
        return lenient_number(s).map(|v| -v);
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if let Some(f) = frac {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("not a number: {t:?}"));
        }
    }
    let seps = |c: char| matches!(c, ',' | ' ' | '\u{a0}' | '\u{202f}' | '\'' | '_');
    let groups: Vec<&str> = int.split(seps).collect();
    if groups
        .iter()
        .any(|g| !g.bytes().all(|b| b.is_ascii_digit()))
        || int.is_empty()
    {
        return Err(format!("not a number: {t:?}"));
    }
    if groups.len() > 1 {
        let first_ok = (1..=3).contains(&groups[0].len());
        if !first_ok || groups[1..].iter().any(|g| g.len() != 3) {
            return Err(format!(
                "not a number: {t:?} (a thousands separator must sit between groups of three \
                 digits; the decimal point is `.`)"
            ));
        }
    }
    let digits: String = groups.concat();
    let text = match frac {
        Some(f) => format!("{digits}.{f}"),
        None => digits,
    };
    let v: f64 = text.parse().map_err(|_| format!("not a number: {t:?}"))?;
    if !v.is_finite() {
        return Err(format!("not a number: {t:?}"));
    }
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(lenient_number("1,200"), Ok(1200.0));
        assert_eq!(lenient_number("$210,000,000"), Ok(210e6));
        assert_eq!(lenient_number("1 200"), Ok(1200.0));
        assert_eq!(
            lenient_number("€ 1.234.567"),
            Err("not a number: \"€ 1.234.567\"".into())
        );
        assert_eq!(lenient_number("1,200.50 USD"), Ok(1200.5));
        assert_eq!(lenient_number("-1,000"), Ok(-1000.0));
        assert!(lenient_number("1,2").unwrap_err().contains("three digits"));
        assert!(lenient_number("12,00")
            .unwrap_err()
            .contains("three digits"));
        assert!(lenient_number("1234,567").is_err());
        assert!(lenient_number("abc").is_err());
        assert!(lenient_number("").is_err());
        assert_eq!(lenient_number("42"), Ok(42.0));
    }

    #[test]
    fn dates() {
        let d = |s: &str, f: Option<&str>| parse_date(s, f).map(|i| i.to_rfc3339());
        assert_eq!(
            d("3/5/2024", Some("%m/%d/%Y")).unwrap(),
            "2024-03-05T00:00:00Z"
        );
        assert_eq!(
            d("15-03-2024", Some("%d-%m-%Y")).unwrap(),
            "2024-03-15T00:00:00Z"
        );
        assert_eq!(
            d("20221109", Some("%Y%m%d")).unwrap(),
            "2022-11-09T00:00:00Z"
        );
        assert_eq!(d("2024-03-05 10:22", None).unwrap(), "2024-03-05T10:22:00Z");
        assert_eq!(
            d("2024-03-05T10:22:00.000+0100", None).unwrap(),
            "2024-03-05T09:22:00Z"
        );
        assert_eq!(d("3/5/2024", None), None);
        assert_eq!(d("13/13/2024", Some("%m/%d/%Y")), None);
    }

    #[test]
    fn deal_outcomes() {
        let r = InputRules::of(&Config::default(), FileKind::Deals, "deals");
        let o = |stage: &str| r.deal_outcome(None, None, None, stage, "").unwrap();
        assert_eq!(o("closedwon"), DealOutcome::Won);
        assert_eq!(o("Closed Won"), DealOutcome::Won);
        assert_eq!(o("CLOSED LOST"), DealOutcome::Lost);
        assert_eq!(o("contractsent"), DealOutcome::Open);
        let sf = |c: &str, w: &str| r.deal_outcome(None, Some(c), Some(w), "x", "").unwrap();
        assert_eq!(sf("true", "true"), DealOutcome::Won);
        assert_eq!(sf("TRUE", "false"), DealOutcome::Lost);
        assert_eq!(sf("false", "false"), DealOutcome::Open);
        let mut cfg = Config::default();
        cfg.inputs.deals.pipelines.insert(
            "renewals".into(),
            abm_core::inputs::PipelineStages {
                won_stages: vec!["Renewed".into()],
                lost_stages: vec!["Churned".into()],
            },
        );
        let r = InputRules::of(&cfg, FileKind::Deals, "deals");
        assert_eq!(
            r.deal_outcome(None, None, None, "renewed", "Renewals")
                .unwrap(),
            DealOutcome::Won
        );
        assert_eq!(
            r.deal_outcome(None, None, None, "closedwon", "Renewals")
                .unwrap(),
            DealOutcome::Open
        );
    }

    #[test]
    fn criteria_widen_with_value_maps() {
        use abm_core::config::Points;
        // The default industry and country criteria are graded: each label of a listed
        // value's class earns that value's points.
        let cfg = expand_values(&Config::default());
        let points = |i: usize, label: &str| -> Option<f64> {
            let Criterion::In {
                points: Points::PerValue(m),
                ..
            } = &cfg.icp.criteria[i]
            else {
                panic!("criterion {i} is graded")
            };
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(label))
                .map(|(_, p)| *p)
        };
        for v in [
            "Computer Software",
            "computer_software",
            "financial services",
            "finance",
        ] {
            assert_eq!(points(0, v), Some(30.0), "{v}");
        }
        for v in ["usa", "u.s.", "united states of america", "uk"] {
            assert_eq!(points(3, v), Some(15.0), "{v}");
        }
        assert_eq!(points(3, "JP"), Some(8.0));
        assert_eq!(points(3, "Brazil"), None);
        // A flat list widens as before.
        let mut flat = Config::default();
        flat.icp.criteria[0] = Criterion::In {
            field: "industry".into(),
            values: vec!["software".into()],
            points: Points::Flat(30.0),
        };
        let Criterion::In { values, .. } = &expand_values(&flat).icp.criteria[0] else {
            panic!()
        };
        assert!(values
            .iter()
            .any(|x| x.eq_ignore_ascii_case("computer software")));
    }
}
