//! Engagement (SPEC §4.2): the per-account accumulator that the bulk path folds every event into,
//! the observations that the detailed path records, deals, triggers and demotion signals.
//!
//! The accumulator is 64 bytes and `Copy`; two partial accumulators of the same account merge
//! into exactly the state one sequential pass would have produced, whatever the split, so the
//! bulk path can fold events on several threads.

use crate::account::AccountIdx;
use crate::model::{EngagementLevel, EventClass};
use crate::rules::{Code, Rules, MAX_CONTACT_THRESHOLD};
use crate::time::Instant;

/// Per-account engagement state. Exactly one cache line, aligned, so the bulk fold's prefetch
/// brings in all of it. The default ("nothing seen") is all zero bits, so a large array of
/// states can come straight from zeroed memory. Two states are equal when they say the same:
/// the engaged contacts compare as a set (the order they were seen in is not part of the state).
#[derive(Debug, Clone, Copy, Eq, Default)]
#[repr(C, align(64))]
pub struct EngagementState {
    /// Time of the most recent counted event at the best level.
    best_at: Stamp,
    /// Last engagement event of any level (≤ as_of, after the floor), window or not: the
    /// Future Pipeline inactivity clock.
    last_any: Stamp,
    /// Last Medium+ engagement event: the Active Focus inactivity clock.
    last_medium_plus: Stamp,
    /// Hashes of distinct engaged contacts (first `Rules::contacts_needed` only).
    contacts: [u64; MAX_CONTACT_THRESHOLD as usize],
    /// Events counted in the window.
    pub counted: u32,
    pub best_code: Code,
    best: u8,
    n_contacts: u8,
}

/// An instant as stored in a state: order-preserving, with `Instant::MIN` ("never") as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp(u64);

impl Stamp {
    const SIGN: u64 = 1 << 63;

    #[inline]
    fn of(at: Instant) -> Stamp {
        Stamp(at.0 as u64 ^ Self::SIGN)
    }

    #[inline]
    fn get(self) -> Instant {
        Instant((self.0 ^ Self::SIGN) as i64)
    }
}

impl PartialEq for EngagementState {
    fn eq(&self, other: &Self) -> bool {
        let contacts = |s: &EngagementState| {
            let mut c = s.contacts;
            c[..s.n_contacts as usize].sort_unstable();
            c
        };
        self.best_at == other.best_at
            && self.last_any == other.last_any
            && self.last_medium_plus == other.last_medium_plus
            && self.counted == other.counted
            && self.best_code == other.best_code
            && self.best == other.best
            && self.n_contacts == other.n_contacts
            && contacts(self) == contacts(other)
    }
}

/// What happened to one observed engagement event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Counted(EngagementLevel),
    /// After `as_of`: ignored, never an error.
    AfterAsOf,
    /// Before the account's last demotion: evidence never reaches back past it.
    BeforeFloor,
    /// Older than the type's window (`website_visit` counts only within 30 days).
    OutsideWindow,
    /// A demotion signal (`in_window` tells whether it counts for the demotion rules).
    Signal {
        in_window: bool,
    },
}

impl Verdict {
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Counted(_) => "counted",
            Verdict::AfterAsOf => "after as_of, ignored",
            Verdict::BeforeFloor => "before the last demotion, ignored",
            Verdict::OutsideWindow => "outside its window",
            Verdict::Signal { in_window: true } => "demotion signal in window",
            Verdict::Signal { in_window: false } => "demotion signal outside window",
        }
    }
}

/// A 64-bit hash of a contact id: distinctness of contacts within one account. Held in memory
/// only (never stored), so the function may change between versions.
#[inline]
pub fn contact_hash(s: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0xc0_47ac7).hash_one(s) | 1 // never 0: 0 = empty slot
}

impl EngagementState {
    /// Time of the most recent counted event at the best level (`Instant::MIN`: none).
    pub fn best_at(&self) -> Instant {
        self.best_at.get()
    }

    /// Last engagement event of any level (≤ as_of, after the floor), window or not: the
    /// Future Pipeline inactivity clock (`Instant::MIN`: never).
    pub fn last_any(&self) -> Instant {
        self.last_any.get()
    }

    /// Last Medium+ engagement event: the Active Focus inactivity clock (`Instant::MIN`: never).
    pub fn last_medium_plus(&self) -> Instant {
        self.last_medium_plus.get()
    }

    /// This state with its inactivity clocks reset (what a fold that does not keep them has).
    pub fn without_clocks(mut self) -> EngagementState {
        self.last_any = Stamp::default();
        self.last_medium_plus = Stamp::default();
        self
    }

    pub fn best_level(&self) -> EngagementLevel {
        EngagementLevel::from_u8(self.best)
    }

    /// Distinct engaged contacts, saturating at `Rules::contacts_needed`.
    pub fn engaged_contacts(&self) -> u32 {
        self.n_contacts as u32
    }

    /// Fold one event in. `floor` is the account's last demotion (`Instant::MIN` if none).
    #[inline]
    pub fn observe(
        &mut self,
        rules: &Rules,
        code: Code,
        at: Instant,
        contact: &[u8],
        floor: Instant,
    ) -> Verdict {
        let h = if contact.is_empty() {
            0
        } else {
            contact_hash(contact)
        };
        self.observe_hashed(rules, code, at, h, floor)
    }

    /// [`Self::observe`] with the contact id already hashed (`0` = no contact).
    #[inline]
    pub fn observe_hashed(
        &mut self,
        rules: &Rules,
        code: Code,
        at: Instant,
        contact: u64,
        floor: Instant,
    ) -> Verdict {
        if at > rules.as_of {
            return Verdict::AfterAsOf;
        }
        if at <= floor {
            return Verdict::BeforeFloor;
        }
        let level = match rules.event_class[code as usize] {
            EventClass::DemotionSignal => {
                return Verdict::Signal {
                    in_window: at >= rules.engagement_from,
                }
            }
            EventClass::Engagement(l) => l,
        };
        self.last_any = self.last_any.max(Stamp::of(at));
        if level >= EngagementLevel::Medium {
            self.last_medium_plus = self.last_medium_plus.max(Stamp::of(at));
        }
        if at < rules.event_from[code as usize] {
            return Verdict::OutsideWindow;
        }
        self.counted += 1;
        self.offer_best(level as u8, Stamp::of(at), code);
        if contact != 0 {
            self.add_contact(contact, rules.contacts_needed);
        }
        Verdict::Counted(level)
    }

    #[inline]
    fn offer_best(&mut self, level: u8, at: Stamp, code: Code) {
        // Strongest level, then most recent, then the smaller code: a total order, so merging
        // partial states gives the same answer as one pass.
        let better = (level, at, std::cmp::Reverse(code))
            > (self.best, self.best_at, std::cmp::Reverse(self.best_code));
        if better {
            self.best = level;
            self.best_at = at;
            self.best_code = code;
        }
    }

    #[inline]
    fn add_contact(&mut self, h: u64, needed: u32) {
        let n = self.n_contacts as usize;
        if n >= needed as usize || self.contacts[..n].contains(&h) {
            return;
        }
        self.contacts[n] = h;
        self.n_contacts += 1;
    }

    /// Combine the partial state of the same account folded on another thread.
    pub fn merge(&mut self, other: &EngagementState, rules: &Rules) {
        if other.best_at != Stamp::default() {
            self.offer_best(other.best, other.best_at, other.best_code);
        }
        self.counted += other.counted;
        self.last_any = self.last_any.max(other.last_any);
        self.last_medium_plus = self.last_medium_plus.max(other.last_medium_plus);
        for &h in &other.contacts[..other.n_contacts as usize] {
            self.add_contact(h, rules.contacts_needed);
        }
    }
}

/// What made the engagement level what it is.
#[derive(Debug, Clone, PartialEq)]
pub enum LevelBasis {
    /// The strongest counted event (type code, time).
    Event {
        code: Code,
        at: Instant,
    },
    /// Distinct engaged contacts.
    Contacts(u32),
    /// An active open deal (index into the account's deals).
    OpenDeal(usize),
    Nothing,
}

/// Outcome of a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DealOutcome {
    Open,
    Won,
    Lost,
}

impl DealOutcome {
    pub fn parse(s: &str) -> Option<DealOutcome> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Some(DealOutcome::Open),
            "won" => Some(DealOutcome::Won),
            "lost" => Some(DealOutcome::Lost),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DealOutcome::Open => "open",
            DealOutcome::Won => "won",
            DealOutcome::Lost => "lost",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub account: AccountIdx,
    pub deal_id: String,
    pub stage: String,
    pub amount: Option<f64>,
    pub created_at: Instant,
    pub closed_at: Option<Instant>,
    pub last_stage_change_at: Option<Instant>,
    pub outcome: DealOutcome,
    /// What was sold (the deals file's `product` column), for cross-sell analysis.
    pub product: Option<String>,
    /// The deal's stage history (the deals file's `stage_history` column), oldest first:
    /// when given, a deal's stage, last change and outcome at `as_of` come from it.
    pub history: Vec<StageEntry>,
}

/// One step of a deal's stage history: the stage it entered, when, and what that stage means.
#[derive(Debug, Clone, PartialEq)]
pub struct StageEntry {
    pub stage: String,
    pub at: Instant,
    pub outcome: DealOutcome,
}

impl StageEntry {
    /// A stored history: one line per entry, `MICROS<TAB>outcome<TAB>stage`, oldest first.
    pub fn encode(history: &[StageEntry]) -> String {
        let mut s = String::new();
        for (i, e) in history.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(&e.at.0.to_string());
            s.push('\t');
            s.push_str(e.outcome.as_str());
            s.push('\t');
            s.push_str(&e.stage.replace(['\n', '\r'], " "));
        }
        s
    }

    /// The inverse of [`Self::encode`]; `None` when the text is not such a history.
    pub fn decode(text: &str) -> Option<Vec<StageEntry>> {
        text.split('\n')
            .map(|line| {
                let mut f = line.splitn(3, '\t');
                let at = Instant(f.next()?.parse().ok()?);
                let outcome = DealOutcome::parse(f.next()?)?;
                Some(StageEntry {
                    stage: f.next()?.to_string(),
                    at,
                    outcome,
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DealStatus {
    /// Open, created by `as_of`, stage changed within `stalled_after_days`: High engagement.
    Active,
    /// Open, no stage change for `stalled_after_days`: not engagement; demotes Active Focus.
    Stalled,
    /// Created after `as_of`: ignored.
    NotYetCreated,
    /// Won or lost.
    Closed,
    /// Active but from before the account's last demotion.
    BeforeFloor,
}

impl Deal {
    /// Last stage change, else creation.
    pub fn last_change(&self) -> Instant {
        self.last_stage_change_at.unwrap_or(self.created_at)
    }

    /// The stage-history entry in force at `as_of` (the last one entered by then).
    pub fn entry_at(&self, as_of: Instant) -> Option<&StageEntry> {
        self.history.iter().rev().find(|e| e.at <= as_of)
    }

    /// The outcome as of `as_of`: a deal closed after `as_of` was open then (SPEC §4.2); with
    /// a stage history, the stage it was in then says.
    pub fn outcome_at(&self, as_of: Instant) -> DealOutcome {
        if let Some(e) = self.entry_at(as_of) {
            return e.outcome;
        }
        match self.closed_at {
            Some(c) if self.outcome != DealOutcome::Open && c > as_of => DealOutcome::Open,
            _ => self.outcome,
        }
    }

    /// When it closed, as known at `as_of` (`None` while open then): the history's closing
    /// entry, else `closed_at` (else its creation).
    pub fn closed_at_by(&self, as_of: Instant) -> Option<Instant> {
        if self.outcome_at(as_of) == DealOutcome::Open {
            return None;
        }
        match self.entry_at(as_of) {
            Some(e) => Some(e.at),
            None => Some(self.closed_at.unwrap_or(self.created_at)),
        }
    }

    /// The last stage change known by `as_of`: from the stage history when given, else
    /// `last_stage_change_at` unless it is after `as_of` (not known then), else creation.
    /// Nothing dated after `as_of` is read, so a run over a later export gives what a run over
    /// the export of that day gave.
    pub fn last_change_at(&self, as_of: Instant) -> Instant {
        if let Some(e) = self.entry_at(as_of) {
            return e.at.max(self.created_at);
        }
        match self.last_stage_change_at {
            Some(t) if t <= as_of => t,
            _ => self.created_at,
        }
    }

    /// The stage as of `as_of`: from the stage history when given; else the stage field,
    /// unless the deal closed after `as_of` (then `open` — which open stage it was in is not
    /// in the data).
    pub fn stage_at(&self, as_of: Instant) -> &str {
        if let Some(e) = self.entry_at(as_of) {
            &e.stage
        } else if self.outcome != DealOutcome::Open && self.outcome_at(as_of) == DealOutcome::Open {
            "open"
        } else {
            &self.stage
        }
    }

    /// Whether the deal was won by `as_of` (closed on or before it).
    pub fn won_by(&self, as_of: Instant) -> bool {
        self.created_at <= as_of && self.outcome_at(as_of) == DealOutcome::Won
    }

    pub fn status(&self, rules: &Rules, floor: Instant) -> DealStatus {
        let last_change = self.last_change_at(rules.as_of);
        if self.created_at > rules.as_of {
            DealStatus::NotYetCreated
        } else if self.outcome_at(rules.as_of) != DealOutcome::Open {
            DealStatus::Closed
        } else if last_change < rules.stalled_before {
            DealStatus::Stalled
        } else if last_change <= floor {
            DealStatus::BeforeFloor
        } else {
            DealStatus::Active
        }
    }
}

/// A buying signal for one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub account: AccountIdx,
    pub code: Code,
    pub at: Instant,
    pub headline: String,
}

impl Trigger {
    /// In the trigger window (inclusive), not after `as_of`, after the floor.
    pub fn counts(&self, rules: &Rules, floor: Instant) -> bool {
        self.at >= rules.trigger_from && self.at <= rules.as_of && self.at > floor
    }
}

/// A demotion-signal event (`champion_left`, …) kept with its date as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    pub account: AccountIdx,
    pub code: Code,
    pub at: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use EngagementLevel::*;

    #[test]
    fn state_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<EngagementState>(), 64);
        assert_eq!(std::mem::align_of::<EngagementState>(), 64);
    }

    const AS_OF: &str = "2026-11-01T00:00:00Z";

    fn rules() -> Rules {
        Rules::compile(&Config::default(), Instant::parse(AS_OF).unwrap()).unwrap()
    }
    fn t(s: &str) -> Instant {
        Instant::parse(s).unwrap()
    }
    fn obs(st: &mut EngagementState, r: &Rules, ty: &str, at: &str, contact: &str) -> Verdict {
        let code = r.events.lookup(ty.as_bytes()).unwrap();
        st.observe(r, code, t(at), contact.as_bytes(), Instant::MIN)
    }

    #[test]
    fn window_ends_are_inclusive() {
        let r = rules();
        let mut st = EngagementState::default();
        // as_of − 90 days exactly counts; one second earlier does not.
        assert_eq!(
            obs(&mut st, &r, "demo", "2026-08-03T00:00:00Z", ""),
            Verdict::Counted(High)
        );
        let mut st = EngagementState::default();
        assert_eq!(
            obs(&mut st, &r, "demo", "2026-08-02T23:59:59Z", ""),
            Verdict::OutsideWindow
        );
        assert_eq!(st.best_level(), None);
        // as_of exactly counts; one second later is ignored.
        assert_eq!(
            obs(&mut st, &r, "meeting", AS_OF, ""),
            Verdict::Counted(High)
        );
        let mut st = EngagementState::default();
        assert_eq!(
            obs(&mut st, &r, "meeting", "2026-11-01T00:00:01Z", ""),
            Verdict::AfterAsOf
        );
        assert_eq!(st, EngagementState::default());
    }

    #[test]
    fn bare_dates_and_offsets() {
        let r = rules();
        let mut st = EngagementState::default();
        // A bare date is midnight UTC: 2026-08-03 is exactly the window start.
        assert_eq!(
            obs(&mut st, &r, "email_reply", "2026-08-03", ""),
            Verdict::Counted(Medium)
        );
        // 2026-11-01T01:00:00+02:00 is 2026-10-31T23:00Z: inside.
        assert_eq!(
            obs(&mut st, &r, "demo", "2026-11-01T01:00:00+02:00", ""),
            Verdict::Counted(High)
        );
        // 2026-10-31T20:00:00-05:00 is 2026-11-01T01:00Z: after as_of.
        assert_eq!(
            obs(&mut st, &r, "demo", "2026-10-31T20:00:00-05:00", ""),
            Verdict::AfterAsOf
        );
        // 2026-08-02T23:00:00-01:00 is 2026-08-03T00:00Z: exactly the start.
        let mut st = EngagementState::default();
        assert_eq!(
            obs(&mut st, &r, "demo", "2026-08-02T23:00:00-01:00", ""),
            Verdict::Counted(High)
        );
    }

    #[test]
    fn website_visit_counts_only_within_30_days() {
        let r = rules();
        let mut st = EngagementState::default();
        assert_eq!(
            obs(&mut st, &r, "website_visit", "2026-10-02T00:00:00Z", "c1"),
            Verdict::Counted(Low)
        );
        assert_eq!(
            obs(&mut st, &r, "website_visit", "2026-10-01T23:59:59Z", "c2"),
            Verdict::OutsideWindow
        );
        // The contact of an uncounted event is not engaged.
        assert_eq!(st.engaged_contacts(), 1);
        // ... but it is still engagement for the inactivity clock.
        assert_eq!(st.last_any(), t("2026-10-02T00:00:00Z"));
        // Other low types count over the whole window.
        assert_eq!(
            obs(&mut st, &r, "ad_click", "2026-08-10", ""),
            Verdict::Counted(Low)
        );
    }

    /// Issue 13, "stage history when given": a deal's stage, last change and outcome at
    /// as_of come from the history; before its first entry, from the row as without one.
    #[test]
    fn a_stage_history_tells_the_deal_as_of_the_date() {
        let mut d = deal("2026-01-05", Some("2026-05-10"), DealOutcome::Won);
        d.closed_at = Some(t("2026-05-10"));
        let entry = |stage: &str, at: &str, outcome| StageEntry {
            stage: stage.into(),
            at: t(at),
            outcome,
        };
        d.history = vec![
            entry("proposal", "2026-03-10", DealOutcome::Open),
            entry("closed_won", "2026-05-10", DealOutcome::Won),
        ];
        let at = t("2026-04-01");
        assert_eq!(d.stage_at(at), "proposal");
        assert_eq!(d.last_change_at(at), t("2026-03-10"));
        assert_eq!(d.outcome_at(at), DealOutcome::Open);
        assert_eq!(d.closed_at_by(at), Option::None);
        let at = t("2026-05-11");
        assert_eq!(d.outcome_at(at), DealOutcome::Won);
        assert_eq!(d.closed_at_by(at), Some(t("2026-05-10")));
        // Before the first entry: the row's rule (closed later = open then, last change =
        // creation).
        let at = t("2026-02-01");
        assert_eq!(d.outcome_at(at), DealOutcome::Open);
        assert_eq!(d.last_change_at(at), t("2026-01-05"));
        assert_eq!(d.stage_at(at), "open");
        // Stored and read back.
        assert_eq!(
            StageEntry::decode(&StageEntry::encode(&d.history)),
            Some(d.history.clone())
        );
        assert_eq!(StageEntry::decode("x\topen\tproposal"), Option::None);
    }

    #[test]
    fn contacts_are_distinct_non_empty_and_engaged() {
        let r = rules();
        let mut st = EngagementState::default();
        for c in ["c1", "c1", "", "c2", ""] {
            obs(&mut st, &r, "email_open", "2026-10-20", c);
        }
        assert_eq!(st.engaged_contacts(), 2);
        // Demotion signals are not engagement: their contacts do not count.
        obs(&mut st, &r, "champion_left", "2026-10-20", "c3");
        assert_eq!(st.engaged_contacts(), 2);
        obs(&mut st, &r, "email_open", "2026-10-21", "c3");
        obs(&mut st, &r, "email_open", "2026-10-21", "c4");
        obs(&mut st, &r, "email_open", "2026-10-21", "c5");
        assert_eq!(st.engaged_contacts(), 3, "saturates at what the rules need");
    }

    #[test]
    fn signals_are_classified_not_counted() {
        let r = rules();
        let mut st = EngagementState::default();
        assert_eq!(
            obs(&mut st, &r, "no_priority", "2026-10-01", "x"),
            Verdict::Signal { in_window: true }
        );
        assert_eq!(
            obs(&mut st, &r, "no_priority", "2026-01-01", "x"),
            Verdict::Signal { in_window: false }
        );
        assert_eq!(st, EngagementState::default());
    }

    #[test]
    fn floor_hides_older_evidence() {
        let r = rules();
        let mut st = EngagementState::default();
        let code = r.events.lookup(b"demo").unwrap();
        let floor = t("2026-10-15");
        assert_eq!(
            st.observe(&r, code, t("2026-10-15"), b"", floor),
            Verdict::BeforeFloor
        );
        assert_eq!(
            st.observe(&r, code, t("2026-10-16"), b"", floor),
            Verdict::Counted(High)
        );
    }

    #[test]
    fn merge_equals_one_pass() {
        let r = rules();
        let evs = [
            ("email_open", "2026-10-20", "c1"),
            ("demo", "2026-09-01", "c2"),
            ("meeting", "2026-10-01", "c3"),
            ("webinar_attended", "2026-10-25", "c1"),
            ("website_visit", "2026-09-01", "c4"),
            ("demo", "2026-10-01", "c9"),
        ];
        let mut one = EngagementState::default();
        for (ty, at, c) in evs {
            obs(&mut one, &r, ty, at, c);
        }
        for split in 0..=evs.len() {
            let (mut a, mut b) = (EngagementState::default(), EngagementState::default());
            for (i, (ty, at, c)) in evs.iter().enumerate() {
                obs(if i < split { &mut a } else { &mut b }, &r, ty, at, c);
            }
            b.merge(&a, &r);
            assert_eq!(b.best_level(), one.best_level());
            assert_eq!((b.best_at, b.best_code), (one.best_at, one.best_code));
            assert_eq!(b.counted, one.counted);
            assert_eq!(b.engaged_contacts(), one.engaged_contacts());
            assert_eq!(b.last_any, one.last_any);
            assert_eq!(b.last_medium_plus, one.last_medium_plus);
        }
    }

    fn deal(created: &str, changed: Option<&str>, outcome: DealOutcome) -> Deal {
        Deal {
            product: Option::None,
            history: Vec::new(),
            account: 0,
            deal_id: "D1".into(),
            stage: "proposal".into(),
            amount: Option::None,
            created_at: t(created),
            closed_at: Option::None,
            last_stage_change_at: changed.map(t),
            outcome,
        }
    }

    #[test]
    fn deal_status_boundaries() {
        let r = rules();
        let m = Instant::MIN;
        // 45 days before as_of exactly: still active (inclusive).
        assert_eq!(
            deal("2026-09-17", Option::None, DealOutcome::Open).status(&r, m),
            DealStatus::Active
        );
        assert_eq!(
            deal("2026-09-16T23:59:59", Option::None, DealOutcome::Open).status(&r, m),
            DealStatus::Stalled
        );
        assert_eq!(
            deal("2026-01-01", Some("2026-10-01"), DealOutcome::Open).status(&r, m),
            DealStatus::Active
        );
        assert_eq!(
            deal("2026-11-02", Option::None, DealOutcome::Open).status(&r, m),
            DealStatus::NotYetCreated
        );
        assert_eq!(
            deal("2026-10-01", Option::None, DealOutcome::Won).status(&r, m),
            DealStatus::Closed
        );
        assert_eq!(
            deal("2026-10-01", Option::None, DealOutcome::Open).status(&r, t("2026-10-05")),
            DealStatus::BeforeFloor
        );
    }

    #[test]
    fn the_default_state_is_all_zero_bits_and_stamps_keep_order() {
        let st = EngagementState::default();
        // SAFETY: reading a plain-integer struct (no padding at its size of 64) as bytes.
        let bytes: [u8; 64] = unsafe { std::mem::transmute(st) };
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(st.best_at(), Instant::MIN);
        assert_eq!(st.last_any(), Instant::MIN);
        let instants = [
            i64::MIN,
            i64::MIN + 1,
            -5,
            -1,
            0,
            1,
            1_793_095_200_000_000,
            i64::MAX,
        ];
        for w in instants.windows(2) {
            assert!(Stamp::of(Instant(w[0])) < Stamp::of(Instant(w[1])));
            assert_eq!(Stamp::of(Instant(w[0])).get(), Instant(w[0]));
        }
    }
}
