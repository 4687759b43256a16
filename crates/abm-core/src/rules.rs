//! The compiled, validated form of a [`Config`] for one `as_of`: vocabularies as small lookup
//! tables, windows as instants, the decision table as a dense array. Built once per run; read by
//! every worker thread.

use crate::config::{invalid, parse_tier_list, Config, ConfigError, Criterion};
use crate::model::{Cluster, EngagementLevel, EventClass, Tier};
use crate::time::Instant;

/// Index into a [`Vocabulary`].
pub type Code = u16;

/// A small string → code table for the couple of dozen event and trigger types a config
/// holds: one probe of an open-addressed table, keyed by length and the name's first and last
/// eight bytes under a multiplier chosen so that no two names share a slot.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    names: Vec<String>,
    /// A power-of-two table; `len == 0` marks an empty slot.
    slots: Vec<Slot>,
    mul: u64,
    shift: u32,
    /// Two names with the same length, head and tail (longer than 16 bytes): a lookup that
    /// lands on one may need the other, found by a scan.
    twins: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    a: u64,
    b: u64,
    len: u32,
    code: Code,
}

/// The first 8 bytes and the last `min(len - 8, 8)` bytes, each zero-padded, as words (read
/// with whole-word loads and no branch on the length from 8 bytes on: this is on the bulk
/// hot path, where event types of different lengths alternate at random).
#[inline(always)]
fn words(s: &[u8]) -> (u64, u64) {
    let n = s.len();
    if n < 8 {
        // Overlapping loads put each byte at its place (a stack copy read back as a word
        // would stall store forwarding).
        let a = match n {
            0 => 0,
            1..=3 => {
                s[0] as u64
                    | (s[n / 2] as u64) << (8 * (n / 2))
                    | (s[n - 1] as u64) << (8 * (n - 1))
            }
            _ => {
                let half = |i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4")) as u64;
                half(0) | half(n - 4) << (8 * (n - 4))
            }
        };
        return (a, 0);
    }
    let (Some(head), Some(tail)) = (s.first_chunk::<8>(), s.last_chunk::<8>()) else {
        unreachable!("at least 8 bytes")
    };
    let (a, tail) = (u64::from_le_bytes(*head), u64::from_le_bytes(*tail));
    // 8 bytes: no tail (a shift by 64); 9..15: the last n - 8 bytes; 16 on: the last 8.
    let shift = (16 - n.min(16)) as u32 * 8;
    let b = if shift < 64 { tail >> shift } else { 0 };
    (a, b)
}

#[inline(always)]
fn mix(a: u64, b: u64, len: usize, mul: u64) -> u64 {
    (a ^ b.rotate_left(29) ^ len as u64).wrapping_mul(mul)
}

impl Vocabulary {
    pub fn push(&mut self, name: &str) -> Code {
        if let Some(c) = self.lookup(name.as_bytes()) {
            return c;
        }
        let code = self.names.len() as Code;
        self.names.push(name.to_string());
        self.rebuild();
        code
    }

    /// Lay the names out again: the smallest table (at least four slots per name) and the
    /// first multiplier of a fixed sequence under which every name has a slot of its own.
    fn rebuild(&mut self) {
        let keys: Vec<(u64, u64, usize)> = self
            .names
            .iter()
            .map(|n| {
                let (a, b) = words(n.as_bytes());
                (a, b, n.len())
            })
            .collect();
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        self.twins = distinct.len() < keys.len();
        let mut size = (keys.len() * 4).next_power_of_two().max(16);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        loop {
            for _ in 0..256 {
                // splitmix64: a fixed, well-spread sequence of odd multipliers.
                seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = seed;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                let mul = (z ^ (z >> 31)) | 1;
                let shift = 64 - size.trailing_zeros();
                let mut slots = vec![Slot::default(); size];
                let placed = keys.iter().enumerate().all(|(code, &(a, b, len))| {
                    let s = &mut slots[(mix(a, b, len, mul) >> shift) as usize];
                    if s.len != 0 {
                        // A twin keeps the first name's slot; the scan finds the others.
                        return s.a == a && s.b == b && s.len as usize == len;
                    }
                    *s = Slot {
                        a,
                        b,
                        len: len as u32,
                        code: code as Code,
                    };
                    true
                });
                if placed {
                    self.slots = slots;
                    self.mul = mul;
                    self.shift = shift;
                    return;
                }
            }
            size *= 2;
        }
    }

    /// One probe and two word compares for the usual short names (no `memcmp` call).
    #[inline(always)]
    pub fn lookup(&self, s: &[u8]) -> Option<Code> {
        if self.slots.is_empty() {
            return None;
        }
        let (a, b) = words(s);
        let slot = self.slots[(mix(a, b, s.len(), self.mul) >> self.shift) as usize];
        if slot.a == a && slot.b == b && slot.len as usize == s.len() && !s.is_empty() {
            if s.len() <= 16 || self.names[slot.code as usize].as_bytes() == s {
                return Some(slot.code);
            }
            if self.twins {
                return self.scan(s);
            }
        }
        None
    }

    #[cold]
    fn scan(&self, s: &[u8]) -> Option<Code> {
        self.names
            .iter()
            .position(|n| n.as_bytes() == s)
            .map(|c| c as Code)
    }

    pub fn name(&self, code: Code) -> &str {
        &self.names[code as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Trigger condition of a decision row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerCond {
    Any,
    Yes,
    No,
}

/// The decision table, compiled: `cell[tier][level][has_triggers]` = (row number 1-based, cluster).
#[derive(Debug, Clone)]
pub struct DecisionTable {
    cells: [[[(u8, Cluster); 2]; 4]; 5],
    pub rows: Vec<CompiledRow>,
}

#[derive(Debug, Clone)]
pub struct CompiledRow {
    pub tiers: Vec<Tier>,
    pub levels: Vec<EngagementLevel>,
    pub triggers: TriggerCond,
    pub cluster: Cluster,
}

impl CompiledRow {
    pub fn matches(&self, tier: Tier, level: EngagementLevel, has_triggers: bool) -> bool {
        self.tiers.contains(&tier)
            && self.levels.contains(&level)
            && match self.triggers {
                TriggerCond::Any => true,
                TriggerCond::Yes => has_triggers,
                TriggerCond::No => !has_triggers,
            }
    }

    pub fn describe(&self) -> String {
        let tiers: Vec<_> = self.tiers.iter().map(|t| t.as_str()).collect();
        let levels: Vec<_> = if self.levels.len() == 4 {
            vec!["any"]
        } else {
            self.levels.iter().map(|l| l.as_str()).collect()
        };
        let trig = match self.triggers {
            TriggerCond::Any => "any",
            TriggerCond::Yes => "yes",
            TriggerCond::No => "no",
        };
        format!(
            "tier {} + engagement {} + triggers {} → {}",
            tiers.join("/"),
            levels.join("/"),
            trig,
            self.cluster
        )
    }
}

impl DecisionTable {
    pub fn compile(cfg: &Config) -> Result<DecisionTable, ConfigError> {
        let mut rows = Vec::new();
        for (i, r) in cfg.decision_table.iter().enumerate() {
            let key = format!("decision_table[{i}]");
            let tiers = parse_tier_list(&format!("{key}.tiers"), &r.tiers)?;
            let mut levels = Vec::new();
            for l in &r.engagement {
                if l.eq_ignore_ascii_case("any") {
                    levels.extend(EngagementLevel::ALL);
                } else {
                    levels.push(EngagementLevel::parse(l).ok_or_else(|| {
                        invalid(
                            format!("{key}.engagement"),
                            format!("unknown level {l:?} (high, medium, low, none, any)"),
                        )
                    })?);
                }
            }
            let triggers = match r.triggers.to_ascii_lowercase().as_str() {
                "any" => TriggerCond::Any,
                "yes" | "true" => TriggerCond::Yes,
                "no" | "false" => TriggerCond::No,
                other => {
                    return Err(invalid(
                        format!("{key}.triggers"),
                        format!("expected \"yes\", \"no\" or \"any\", got {other:?}"),
                    ))
                }
            };
            if r.cluster == Cluster::Customer {
                return Err(invalid(
                    format!("{key}.cluster"),
                    "`customer` is no decision-table cluster: a customer enters the track by \
                     `[customers] mode = \"track\"`",
                ));
            }
            rows.push(CompiledRow {
                tiers,
                levels,
                triggers,
                cluster: r.cluster,
            });
        }
        let mut cells = [[[(0u8, Cluster::MonitorOnly); 2]; 4]; 5];
        for tier in Tier::ALL {
            for level in EngagementLevel::ALL {
                for trig in [false, true] {
                    let hit = rows
                        .iter()
                        .position(|r| r.matches(tier, level, trig))
                        .ok_or_else(|| {
                            invalid(
                                "decision_table",
                                format!(
                                    "no row matches tier {tier}, engagement {level}, triggers {}: \
                                     every combination needs a row",
                                    if trig { "yes" } else { "no" }
                                ),
                            )
                        })?;
                    cells[tier.index()][level as usize][trig as usize] =
                        (hit as u8 + 1, rows[hit].cluster);
                }
            }
        }
        Ok(DecisionTable { cells, rows })
    }

    /// (1-based row number, cluster) of the first matching row.
    #[inline]
    pub fn decide(&self, tier: Tier, level: EngagementLevel, has_triggers: bool) -> (u8, Cluster) {
        self.cells[tier.index()][level as usize][has_triggers as usize]
    }
}

/// Everything the engine needs at run time, for one `as_of`.
#[derive(Debug, Clone)]
pub struct Rules {
    pub config: Config,
    pub as_of: Instant,
    /// First instant counted by the engagement window (inclusive).
    pub engagement_from: Instant,
    pub trigger_from: Instant,
    pub events: Vocabulary,
    /// Class of each event code.
    pub event_class: Vec<EventClass>,
    /// First counted instant for each event code (its short window, else the engagement window).
    pub event_from: Vec<Instant>,
    pub triggers: Vocabulary,
    pub decision: DecisionTable,
    /// An open deal whose last stage change is before this instant is stalled.
    pub stalled_before: Instant,
    pub high_contacts: u32,
    pub medium_contacts: u32,
    /// Contacts tracked per account: enough to decide both thresholds.
    pub contacts_needed: u32,
    pub af_signal: Vec<bool>,
    pub fp_signal: Vec<bool>,
    /// `config.hash()`, computed once (it serializes the whole config: too slow per account).
    config_hash: String,
}

/// Engaged contacts tracked per account in bulk state (see `EngagementState`).
pub const MAX_CONTACT_THRESHOLD: u32 = 4;

impl Rules {
    pub fn compile(cfg: &Config, as_of: Instant) -> Result<Rules, ConfigError> {
        let e = &cfg.engagement;
        let mut events = Vocabulary::default();
        let mut event_class = Vec::new();
        let groups: [(&str, &Vec<String>, EventClass); 4] = [
            (
                "engagement.high",
                &e.high,
                EventClass::Engagement(EngagementLevel::High),
            ),
            (
                "engagement.medium",
                &e.medium,
                EventClass::Engagement(EngagementLevel::Medium),
            ),
            (
                "engagement.low",
                &e.low,
                EventClass::Engagement(EngagementLevel::Low),
            ),
            (
                "engagement.demotion_signals",
                &e.demotion_signals,
                EventClass::DemotionSignal,
            ),
        ];
        for (key, names, class) in groups {
            for n in names {
                if n.trim().is_empty() {
                    return Err(invalid(key, "empty event type"));
                }
                if events.lookup(n.as_bytes()).is_some() {
                    return Err(invalid(
                        key,
                        format!("event type {n:?} is listed in more than one group"),
                    ));
                }
                events.push(n);
                event_class.push(class);
            }
        }
        if e.window_days == 0 {
            return Err(invalid("engagement.window_days", "must be at least 1"));
        }
        let engagement_from = as_of.minus_days(e.window_days);
        let mut event_from = vec![engagement_from; events.len()];
        for (name, days) in &e.short_windows {
            let code = events.lookup(name.as_bytes()).ok_or_else(|| {
                invalid(
                    format!("engagement.short_windows.{name}"),
                    "not an event type of the vocabulary",
                )
            })?;
            event_from[code as usize] = as_of.minus_days(*days).max(engagement_from);
        }
        for (key, v) in [
            ("engagement.high_contacts", e.high_contacts),
            ("engagement.medium_contacts", e.medium_contacts),
        ] {
            if v == 0 || v > MAX_CONTACT_THRESHOLD {
                return Err(invalid(
                    key,
                    format!("must be between 1 and {MAX_CONTACT_THRESHOLD}"),
                ));
            }
        }
        let mut triggers = Vocabulary::default();
        for t in &cfg.triggers.types {
            if t.trim().is_empty() {
                return Err(invalid("triggers.types", "empty trigger type"));
            }
            triggers.push(t);
        }
        let signal_mask = |key: &str, names: &[String]| -> Result<Vec<bool>, ConfigError> {
            let mut mask = vec![false; events.len()];
            for n in names {
                match events.lookup(n.as_bytes()) {
                    Some(c) if event_class[c as usize] == EventClass::DemotionSignal => {
                        mask[c as usize] = true
                    }
                    _ => {
                        return Err(invalid(
                            key,
                            format!("{n:?} is not in engagement.demotion_signals"),
                        ))
                    }
                }
            }
            Ok(mask)
        };
        let af_signal = signal_mask(
            "movement.af_demotion_signals",
            &cfg.movement.af_demotion_signals,
        )?;
        let fp_signal = signal_mask(
            "movement.fp_demotion_signals",
            &cfg.movement.fp_demotion_signals,
        )?;
        let t = &cfg.icp.tiers;
        if !(t.a >= t.b && t.b >= t.c && t.c >= t.d) {
            return Err(invalid(
                "icp.tiers",
                "thresholds must not increase from a to d",
            ));
        }
        for (i, c) in cfg.icp.criteria.iter().enumerate() {
            if c.possible() < 0.0 || c.possible().is_nan() {
                return Err(invalid(
                    format!("icp.criteria[{i}].points"),
                    "must be zero or more",
                ));
            }
            if c.field().trim().is_empty() {
                return Err(invalid(format!("icp.criteria[{i}].field"), "empty field"));
            }
            match c {
                Criterion::In {
                    values,
                    points: crate::config::Points::PerValue(map),
                    ..
                } => {
                    if !values.is_empty() {
                        return Err(invalid(
                            format!("icp.criteria[{i}].values"),
                            "give either `values` with `points = N`, or `points = { value = N, … }` \
                             without `values`",
                        ));
                    }
                    if let Some((k, _)) = map.iter().find(|(_, p)| **p < 0.0 || p.is_nan()) {
                        return Err(invalid(
                            format!("icp.criteria[{i}].points.{k}"),
                            "must be zero or more",
                        ));
                    }
                }
                Criterion::Range { min, max, .. } => match (min, max) {
                    (None, None) => {
                        return Err(invalid(
                            format!("icp.criteria[{i}]"),
                            "a range needs `min`, `max` or both",
                        ))
                    }
                    (Some(lo), Some(hi)) if lo > hi => {
                        return Err(invalid(
                            format!("icp.criteria[{i}].min"),
                            format!("{lo} is greater than max {hi}"),
                        ))
                    }
                    _ => {}
                },
                Criterion::Bands { bands, .. } => {
                    if bands.is_empty() {
                        return Err(invalid(format!("icp.criteria[{i}].bands"), "no bands"));
                    }
                    for (j, b) in bands.iter().enumerate() {
                        if let (Some(lo), Some(hi)) = (b.min, b.max) {
                            if lo > hi {
                                return Err(invalid(
                                    format!("icp.criteria[{i}].bands[{j}].min"),
                                    format!("{lo} is greater than max {hi}"),
                                ));
                            }
                        }
                        if b.points < 0.0 || b.points.is_nan() {
                            return Err(invalid(
                                format!("icp.criteria[{i}].bands[{j}].points"),
                                "must be zero or more",
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for (key, r) in [
            ("capacity.cluster_icp", &cfg.capacity.cluster_icp),
            ("capacity.future_pipeline", &cfg.capacity.future_pipeline),
            ("capacity.active_focus", &cfg.capacity.active_focus),
        ] {
            for (k, v) in [("min_share", r.min_share), ("max_share", r.max_share)] {
                if let Some(v) = v {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(invalid(
                            format!("{key}.{k}"),
                            format!("{v} is not a share between 0 and 1"),
                        ));
                    }
                }
            }
            if r.min.is_some() && r.min_share.is_some() {
                return Err(invalid(key, "give `min` or `min_share`, not both"));
            }
            if r.max.is_some() && r.max_share.is_some() {
                return Err(invalid(key, "give `max` or `max_share`, not both"));
            }
            if let (Some(a), Some(b)) = (r.min, r.max) {
                if a > b {
                    return Err(invalid(key, "min is greater than max"));
                }
            }
            if let (Some(a), Some(b)) = (r.min_share, r.max_share) {
                if a > b {
                    return Err(invalid(key, "min_share is greater than max_share"));
                }
            }
        }
        for k in cfg.micro_segment.challenge_from_triggers.keys() {
            if triggers.lookup(k.as_bytes()).is_none() {
                return Err(invalid(
                    format!("micro_segment.challenge_from_triggers.{k}"),
                    "not a trigger type of triggers.types",
                ));
            }
        }
        Ok(Rules {
            decision: DecisionTable::compile(cfg)?,
            as_of,
            engagement_from,
            trigger_from: as_of.minus_days(cfg.triggers.window_days),
            events,
            event_class,
            event_from,
            triggers,
            stalled_before: as_of.minus_days(e.stalled_after_days),
            high_contacts: e.high_contacts,
            medium_contacts: e.medium_contacts,
            contacts_needed: e.high_contacts.max(e.medium_contacts),
            af_signal,
            fp_signal,
            config_hash: cfg.hash(),
            config: cfg.clone(),
        })
    }

    /// These rules as of another instant: the same compiled config (vocabularies, decision
    /// table, hash), with every date that depends on `as_of` computed again exactly as
    /// [`Rules::compile`] computes it. Cheap (no validation, no hashing of the config): what a
    /// server re-evaluating accounts "as of now" on every request uses.
    pub fn at(&self, as_of: Instant) -> Rules {
        let e = &self.config.engagement;
        let engagement_from = as_of.minus_days(e.window_days);
        let mut event_from = vec![engagement_from; self.events.len()];
        for (name, days) in &e.short_windows {
            // Every name was checked by `compile`.
            if let Some(code) = self.events.lookup(name.as_bytes()) {
                event_from[code as usize] = as_of.minus_days(*days).max(engagement_from);
            }
        }
        Rules {
            as_of,
            engagement_from,
            trigger_from: as_of.minus_days(self.config.triggers.window_days),
            event_from,
            stalled_before: as_of.minus_days(e.stalled_after_days),
            ..self.clone()
        }
    }

    /// The stable hash of the config these rules were compiled from (`Config::hash`).
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    pub fn event_name(&self, code: Code) -> &str {
        self.events.name(code)
    }

    pub fn trigger_name(&self, code: Code) -> &str {
        self.triggers.name(code)
    }

    pub fn level_of(&self, code: Code) -> Option<EngagementLevel> {
        match self.event_class[code as usize] {
            EventClass::Engagement(l) => Some(l),
            EventClass::DemotionSignal => None,
        }
    }

    /// Event types of a level, for messages ("demo, meeting, …").
    pub fn types_of(&self, level: EngagementLevel) -> Vec<&str> {
        (0..self.events.len() as Code)
            .filter(|&c| self.level_of(c) == Some(level))
            .map(|c| self.event_name(c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DecisionRow;
    use EngagementLevel::*;

    fn rules() -> Rules {
        Rules::compile(&Config::default(), Instant::parse("2026-11-01").unwrap()).unwrap()
    }

    /// Re-dated rules are exactly the rules compiled at the new instant (short windows
    /// included), for instants before, after and at the original.
    #[test]
    fn rules_at_another_instant_equal_rules_compiled_there() {
        let mut cfg = Config::default();
        cfg.engagement.short_windows.insert("email_open".into(), 7);
        cfg.engagement.window_days = 60;
        cfg.triggers.window_days = 45;
        let base = Rules::compile(&cfg, Instant::parse("2026-11-01").unwrap()).unwrap();
        for t in [
            "2026-11-01",
            "2026-12-01T13:45:07Z",
            "2025-02-28T23:59:59Z",
            "2030-01-01",
        ] {
            let at = Instant::parse(t).unwrap();
            let want = Rules::compile(&cfg, at).unwrap();
            let got = base.at(at);
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{t}");
        }
    }

    #[test]
    fn words_are_the_zero_padded_head_and_tail() {
        let text: Vec<u8> = (b'a'..=b'z').chain(b'A'..=b'Z').collect();
        for n in 0..40 {
            let s = &text[..n];
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a[..n.min(8)].copy_from_slice(&s[..n.min(8)]);
            if n > 8 {
                let m = (n - 8).min(8);
                b[..m].copy_from_slice(&s[n - m..]);
            }
            assert_eq!(
                words(s),
                (u64::from_le_bytes(a), u64::from_le_bytes(b)),
                "{n}"
            );
        }
        let mut v = Vocabulary::default();
        let codes: Vec<Code> = ["a", "ab", "abcdefgh", "abcdefghi", "abcdefghijklmnopq", "b"]
            .iter()
            .map(|n| v.push(n))
            .collect();
        for (n, c) in ["a", "ab", "abcdefgh", "abcdefghi", "abcdefghijklmnopq", "b"]
            .iter()
            .zip(codes)
        {
            assert_eq!(v.lookup(n.as_bytes()), Some(c));
        }
        assert_eq!(v.lookup(b"abcdefghijklmnopr"), Option::None);
        assert_eq!(v.lookup(b"abcdefgj"), Option::None);
        assert_eq!(v.lookup(b""), Option::None);
    }

    /// Every name of a large vocabulary is found under its own code, including names that
    /// share length, head and tail; near misses are not.
    #[test]
    fn vocabulary_finds_every_name_and_nothing_else() {
        let mut names: Vec<String> = (0..300).map(|i| format!("type_{i}")).collect();
        names.extend((0..40).map(|i| format!("shared_head_{i:02}_shared_tail")));
        names.extend(["x", "xy", "abcdefgh", "abcdefghi", "ab\u{e9}cd"].map(String::from));
        let mut v = Vocabulary::default();
        let codes: Vec<Code> = names.iter().map(|n| v.push(n)).collect();
        for (n, &c) in names.iter().zip(&codes) {
            assert_eq!(v.lookup(n.as_bytes()), Some(c), "{n}");
            assert_eq!(v.push(n), c, "pushing {n} again");
            assert_eq!(v.name(c), n);
        }
        for miss in [
            "type_300",
            "type_",
            "shared_head_40_shared_tail",
            "abcdefgi",
            "X",
            "typo_1",
        ] {
            assert_eq!(v.lookup(miss.as_bytes()), Option::None, "{miss}");
        }
    }

    /// The customer track is no decision-table cluster: a row giving `customer` is refused.
    #[test]
    fn customer_is_no_decision_table_cluster() {
        let mut cfg = Config::default();
        cfg.decision_table[0].cluster = Cluster::Customer;
        let Err(e) = Rules::compile(&cfg, Instant::parse("2026-11-01").unwrap()) else {
            panic!("refused");
        };
        assert!(
            e.to_string().contains("decision_table[0].cluster") && e.to_string().contains("track"),
            "{e}"
        );
    }

    #[test]
    fn default_table_is_the_spec_table() {
        let r = rules();
        let d = |t, l, tr| r.decision.decide(t, l, tr);
        use Cluster::*;
        for l in EngagementLevel::ALL {
            for tr in [false, true] {
                assert_eq!(d(Tier::D, l, tr), (1, MonitorOnly));
                assert_eq!(d(Tier::E, l, tr), (1, MonitorOnly));
            }
        }
        for t in [Tier::A, Tier::B] {
            assert_eq!(d(t, High, false), (2, ActiveFocus));
            assert_eq!(d(t, High, true), (2, ActiveFocus));
            assert_eq!(d(t, Medium, true), (3, ActiveFocus));
            assert_eq!(d(t, Medium, false), (4, FuturePipeline));
        }
        assert_eq!(d(Tier::C, High, false), (5, FuturePipeline));
        assert_eq!(d(Tier::C, Medium, true), (5, FuturePipeline));
        for t in [Tier::A, Tier::B, Tier::C] {
            for l in [Low, None] {
                assert_eq!(d(t, l, true), (6, FuturePipeline));
                assert_eq!(d(t, l, false), (7, ClusterIcp));
            }
        }
    }

    #[test]
    fn incomplete_table_is_an_error_naming_the_key() {
        let mut cfg = Config::default();
        cfg.decision_table.pop();
        let err = Rules::compile(&cfg, Instant(0)).unwrap_err().to_string();
        assert!(err.contains("`decision_table`"), "{err}");
        assert!(
            err.contains("tier A, engagement none, triggers no"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut cfg = Config::default();
        cfg.decision_table.push(DecisionRow {
            tiers: vec!["Z".into()],
            engagement: vec!["any".into()],
            triggers: "any".into(),
            cluster: Cluster::ClusterIcp,
        });
        let err = Rules::compile(&cfg, Instant(0)).unwrap_err().to_string();
        assert!(err.contains("decision_table[7].tiers"), "{err}");

        let mut cfg = Config::default();
        cfg.engagement.low.push("demo".into());
        let err = Rules::compile(&cfg, Instant(0)).unwrap_err().to_string();
        assert!(err.contains("engagement.low"), "{err}");

        let mut cfg = Config::default();
        cfg.movement.fp_demotion_signals.push("meeting".into());
        let err = Rules::compile(&cfg, Instant(0)).unwrap_err().to_string();
        assert!(err.contains("movement.fp_demotion_signals"), "{err}");

        let err = Config::from_toml("[engagement]\nwindow_dayz = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("window_dayz"), "{err}");
        let err = Config::from_toml("[engagement]\nhigh_contacts = 9\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("engagement.high_contacts"), "{err}");
    }

    #[test]
    fn vocabulary_lookup() {
        let r = rules();
        let demo = r.events.lookup(b"demo").unwrap();
        assert_eq!(r.level_of(demo), Some(High));
        assert_eq!(r.events.lookup(b"dem"), Option::None);
        assert_eq!(r.events.lookup(b"Demo"), Option::None);
        let wv = r.events.lookup(b"website_visit").unwrap();
        assert_eq!(r.event_from[wv as usize], r.as_of.minus_days(30));
        assert_eq!(r.event_from[demo as usize], r.as_of.minus_days(90));
        let cl = r.events.lookup(b"champion_left").unwrap();
        assert_eq!(r.event_class[cl as usize], EventClass::DemotionSignal);
        assert!(r.af_signal[cl as usize] && !r.fp_signal[cl as usize]);
    }
}
