//! How long an assessment holds (runs that scale with change). Every rule compares `as_of`
//! with a dated fact — an event, a trigger, a deal's dates, the account's entry into its
//! cluster or its floor — shifted by a configured number of days, or reads the calendar year of
//! `as_of` (a company's age). Between two such instants nothing can flip: an account assessed
//! at `as_of` whose data and state stay as they are gets the same assessment at every later
//! as_of before the earliest of them.
//!
//! Tight where it matters (issue 15: the due instant decides how many accounts a daily run
//! assesses): an engagement event only counts from its instant until it leaves its type's
//! window (the count, the best event and the contacts read it); a demotion signal counts
//! within its window; the two inactivity clocks run from the *latest* event and the latest
//! Medium+ event only ([`Horizon::clocks`]), not from every event; events at or before the
//! account's floor never count again (the caller skips them). Deals, triggers and the
//! account's entry keep every day count that a rule may pair with them.

use crate::model::EventClass;
use crate::rules::Rules;
use crate::time::{civil_from_days, days_from_civil, MICROS_PER_DAY};
use crate::Instant;

/// The instants at which assessments made at one `as_of` could change on their own.
#[derive(Debug, Clone)]
pub struct Horizon {
    as_of: Instant,
    /// Per event type: 0, its own window, and the whole window for a demotion signal (its own
    /// window again for an engagement event) (microseconds).
    events: Vec<[i64; 3]>,
    /// The two inactivity clocks (microseconds).
    clocks: [i64; 2],
    /// 0 and the trigger window.
    triggers: [i64; 2],
    /// A deal's creation and last stage change: 0, the stall, the renewal.
    deal_change: [i64; 3],
    /// A deal's close: 0, the renewal.
    deal_closed: [i64; 2],
    /// The account's entry into its cluster: 0 and the two inactivity clocks.
    entered: [i64; 3],
    /// The first instant of the year after as_of's.
    next_year: Instant,
}

fn micros(days: u32) -> i64 {
    days as i64 * MICROS_PER_DAY
}

/// The earliest instant at or after `as_of` among `at` plus each of `offsets`.
fn first(as_of: Instant, at: Instant, offsets: &[i64]) -> Instant {
    offsets
        .iter()
        .map(|&o| Instant(at.0.saturating_add(o)))
        .filter(|&t| t >= as_of)
        .min()
        .unwrap_or(Instant::MAX)
}

impl Horizon {
    pub fn new(rules: &Rules) -> Horizon {
        let c = &rules.config;
        let (af, fp) = (
            micros(c.movement.af_inactivity_days),
            micros(c.movement.fp_inactivity_days),
        );
        let renewal = micros(c.customers.renewal_days);
        let (y, _, _) = civil_from_days(rules.as_of.0.div_euclid(MICROS_PER_DAY));
        Horizon {
            as_of: rules.as_of,
            // An event counts from its instant while within its type's window (shorter for
            // some types), a demotion signal within the whole window; the inactivity clocks
            // run from the latest ones.
            events: rules
                .event_from
                .iter()
                .zip(&rules.event_class)
                .map(|(&from, class)| {
                    let own = rules.as_of.0.saturating_sub(from.0);
                    let whole = match class {
                        EventClass::DemotionSignal => micros(c.engagement.window_days),
                        EventClass::Engagement(_) => own,
                    };
                    [0, own, whole]
                })
                .collect(),
            clocks: [af, fp],
            triggers: [0, micros(c.triggers.window_days)],
            deal_change: [0, micros(c.engagement.stalled_after_days), renewal],
            deal_closed: [0, renewal],
            entered: [0, af, fp],
            next_year: Instant(days_from_civil(y + 1, 1, 1).saturating_mul(MICROS_PER_DAY)),
        }
    }

    /// When a rule reading an event of type `code` at `at` (after the account's floor) could
    /// next flip (`Instant::MAX`: never again), the inactivity clocks aside ([`Self::clocks`]).
    pub fn event(&self, code: crate::rules::Code, at: Instant) -> Instant {
        first(self.as_of, at, &self.events[code as usize])
    }

    /// When an inactivity clock running from the account's latest event or latest Medium+
    /// event (`EngagementState::last_any`, `last_medium_plus`) could next run out.
    pub fn clocks(&self, last_any: Instant, last_medium_plus: Instant) -> Instant {
        first(self.as_of, last_any, &self.clocks).min(first(
            self.as_of,
            last_medium_plus,
            &self.clocks,
        ))
    }

    pub fn trigger(&self, at: Instant) -> Instant {
        first(self.as_of, at, &self.triggers)
    }

    /// A deal's `created_at` or `last_stage_change_at`.
    pub fn deal_change(&self, at: Instant) -> Instant {
        first(self.as_of, at, &self.deal_change)
    }

    pub fn deal_closed(&self, at: Instant) -> Instant {
        first(self.as_of, at, &self.deal_closed)
    }

    /// The account's entry into its cluster, or its floor.
    pub fn entered(&self, at: Instant) -> Instant {
        first(self.as_of, at, &self.entered)
    }

    /// The earliest instant any assessment could change without a dated fact: the year's end
    /// (a company's age is counted in calendar years).
    pub fn start(&self) -> Instant {
        self.next_year
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn the_first_day_count_that_reaches_as_of() {
        let rules =
            Rules::compile(&Config::default(), Instant::parse("2026-06-10").unwrap()).unwrap();
        let h = Horizon::new(&rules);
        let day = |s: &str| Instant::parse(s).unwrap();
        // After as_of: the instant itself (a trigger starts to count).
        assert_eq!(h.trigger(day("2026-06-20")), day("2026-06-20"));
        // On as_of: as_of (a `<=` comparison flips right after).
        assert_eq!(h.trigger(day("2026-06-10")), day("2026-06-10"));
        // 10 days before: the 45-day stall of a deal's last change.
        assert_eq!(h.deal_change(day("2026-05-31")), day("2026-07-15"));
        // A trigger leaves its 90-day window.
        assert_eq!(h.trigger(day("2026-05-31")), day("2026-08-29"));
        // Longer ago than every day count: never again.
        assert_eq!(h.deal_change(day("2020-01-01")), Instant::MAX);
        assert_eq!(h.entered(day("2020-01-01")), Instant::MAX);
        assert_eq!(h.start(), day("2027-01-01"));
    }

    #[test]
    fn an_event_matters_until_it_leaves_its_window_and_the_clocks_run_from_the_latest() {
        let as_of = Instant::parse("2026-06-10").unwrap();
        let rules = Rules::compile(&Config::default(), as_of).unwrap();
        let h = Horizon::new(&rules);
        let day = |s: &str| Instant::parse(s).unwrap();
        let code = |name: &str| rules.events.lookup(name.as_bytes()).unwrap();
        let c = &rules.config;
        let window = c.engagement.window_days as i64;
        // An engagement event: its window's end only (not the whole window's, not the clocks).
        let meeting = code("meeting");
        let own = as_of.days_since(rules.event_from[meeting as usize]);
        let at = day("2026-06-01");
        assert_eq!(h.event(meeting, at), Instant(at.0 + own * MICROS_PER_DAY));
        // A later event: its instant.
        assert_eq!(h.event(meeting, day("2026-07-01")), day("2026-07-01"));
        // Out of its window: never again (the clocks are the caller's).
        assert_eq!(
            h.event(meeting, as_of.minus_days(own as u32 + 1)),
            Instant::MAX
        );
        // A demotion signal: the whole window.
        let signal = code("champion_left");
        assert_eq!(
            h.event(signal, day("2026-06-01")),
            Instant(day("2026-06-01").0 + window * MICROS_PER_DAY)
        );
        // The clocks: from the latest event and the latest Medium+ one.
        let (af, fp) = (
            c.movement.af_inactivity_days as i64,
            c.movement.fp_inactivity_days as i64,
        );
        let last = day("2026-06-01");
        let first_clock = Instant(last.0 + af.min(fp) * MICROS_PER_DAY);
        assert_eq!(h.clocks(last, Instant::MIN), first_clock);
        assert_eq!(h.clocks(Instant::MIN, last), first_clock);
        assert_eq!(h.clocks(Instant::MIN, Instant::MIN), Instant::MAX);
    }
}
