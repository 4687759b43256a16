//! The bundled sample: a deterministic, generated data set in the canonical formats, with a
//! realistic mix (most accounts quiet, some warm, a few hot; triggers, open/stalled/closed deals,
//! demotion signals, events after `as_of`, empty contact ids). `abm demo` runs on it; tests use it
//! at any size.

use crate::output::csv_line;
use abm_core::time::MICROS_PER_SEC;
use abm_core::Instant;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The demo's fixed `as_of`, so the demo prints the same thing everywhere.
pub const SAMPLE_AS_OF: &str = "2026-11-01T00:00:00Z";

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

const INDUSTRIES: &[&str] = &[
    "software",
    "fintech",
    "healthcare",
    "manufacturing",
    "retail",
    "logistics",
    "insurance",
    "banking",
    "telecom",
    "energy",
    "media",
    "education",
    "biotech",
    "cybersecurity",
    "consulting",
];
const COUNTRIES: &[&str] = &[
    "US", "GB", "DE", "FR", "NL", "SE", "CA", "AU", "IN", "BR", "JP", "ES",
];
const TECH: &[&str] = &[
    "salesforce",
    "hubspot",
    "snowflake",
    "aws",
    "gcp",
    "azure",
    "sap",
    "dbt",
];
const CHALLENGES: &[&str] = &["cost_reduction", "growth", "risk", "digital_transformation"];
const NAMES_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Aperture",
    "Nakatomi",
    "Pied Piper",
    "Massive Dynamic",
    "Dunder",
    "Monarch",
];
const NAMES_B: &[&str] = &[
    "Systems",
    "Labs",
    "Holdings",
    "Analytics",
    "Networks",
    "Health",
    "Capital",
    "Logistics",
    "Robotics",
    "Foods",
    "Energy",
    "Media",
    "Bank",
    "Insurance",
    "Cloud",
];
const HIGH: &[&str] = &[
    "demo",
    "meeting",
    "challenge_validated",
    "budget_expressed",
    "timeline_expressed",
];
const MEDIUM: &[&str] = &[
    "content_download",
    "webinar_attended",
    "email_reply",
    "outreach_response",
    "linkedin_connection_accepted",
    "intent_page_visit",
    "event_attended",
];
const LOW: &[&str] = &["website_visit", "ad_click", "email_open"];
const SIGNALS: &[&str] = &["champion_left", "budget_cycle_missed", "no_priority"];
const TRIGGERS: &[&str] = &[
    "funding_round",
    "leadership_change",
    "merger_acquisition",
    "expansion",
    "hiring_surge",
    "product_launch",
    "regulatory_change",
    "intent_surge",
    "layoffs",
    "tech_change",
];
const TOPICS: &[&str] = &[
    "cloud cost",
    "compliance automation",
    "growth analytics",
    "security",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    pub accounts: u64,
    /// Average engagement events per account (skewed: a few accounts hold most).
    pub events_per_account: f64,
    pub seed: u64,
    pub as_of: Instant,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            accounts: 300,
            events_per_account: 12.0,
            seed: 7,
            as_of: Instant::parse(SAMPLE_AS_OF).expect("valid"),
        }
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleCounts {
    pub accounts: u64,
    pub events: u64,
    pub triggers: u64,
    pub deals: u64,
}

fn ago(as_of: Instant, rng: &mut Rng, max_days: u64) -> Instant {
    Instant(as_of.0 - (rng.below(max_days * 86_400) as i64) * MICROS_PER_SEC)
}

/// Write accounts.csv, engagement.csv, triggers.csv and deals.csv into `dir`.
pub fn write_sample(dir: &Path, spec: &SampleSpec) -> io::Result<SampleCounts> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(spec.seed);
    let mut counts = SampleCounts::default();
    let open = |name: &str| -> io::Result<BufWriter<File>> {
        Ok(BufWriter::with_capacity(
            1 << 20,
            File::create(dir.join(name))?,
        ))
    };
    let (mut acc, mut eng, mut trg, mut dls) = (
        open("accounts.csv")?,
        open("engagement.csv")?,
        open("triggers.csv")?,
        open("deals.csv")?,
    );
    let mut buf = Vec::with_capacity(1 << 16);
    csv_line(
        &mut buf,
        [
            "account_id",
            "name",
            "domain",
            "industry",
            "employees",
            "annual_revenue",
            "country",
            "founded_year",
            "tech_stack",
            "challenge",
        ],
    );
    acc.write_all(&buf)?;
    buf.clear();
    csv_line(
        &mut buf,
        [
            "account_id",
            "occurred_at",
            "type",
            "contact_id",
            "event_id",
            "detail",
        ],
    );
    eng.write_all(&buf)?;
    buf.clear();
    csv_line(
        &mut buf,
        [
            "account_id",
            "occurred_at",
            "type",
            "source",
            "headline",
            "strength",
        ],
    );
    trg.write_all(&buf)?;
    buf.clear();
    csv_line(
        &mut buf,
        [
            "deal_id",
            "account_id",
            "stage",
            "amount",
            "created_at",
            "closed_at",
            "last_stage_change_at",
            "outcome",
            "product",
            "owner",
        ],
    );
    dls.write_all(&buf)?;
    buf.clear();

    let width = (spec.accounts.max(1) as f64).log10() as usize + 1;
    let mut deal_no = 0u64;
    let mut event_no = 0u64;
    for i in 1..=spec.accounts {
        let id = format!("ACC-{i:0width$}", width = width.max(4));
        let name = format!("{} {}", rng.pick(NAMES_A), rng.pick(NAMES_B));
        let name = if spec.accounts > 300 {
            format!("{name} {i}")
        } else {
            name
        };
        let domain = format!("{}.example", name.to_lowercase().replace(' ', "-"));
        let industry = *rng.pick(INDUSTRIES);
        let employees = (10.0 * (1.0 + rng.below(1000) as f64).powf(1.25)) as u64;
        let revenue = employees * (60_000 + rng.below(240_000));
        let country = *rng.pick(COUNTRIES);
        let founded = 1950 + rng.below(76);
        let mut tech: Vec<&str> = (0..rng.below(4)).map(|_| *rng.pick(TECH)).collect();
        tech.dedup();
        let challenge = if rng.chance(0.15) {
            *rng.pick(CHALLENGES)
        } else {
            ""
        };
        let (emp, rev, fy) = (
            employees.to_string(),
            revenue.to_string(),
            founded.to_string(),
        );
        let tech = tech.join(";");
        csv_line(
            &mut buf,
            [
                &id, &name, &domain, industry, &emp, &rev, country, &fy, &tech, challenge,
            ]
            .iter()
            .map(|s| &**s),
        );
        acc.write_all(&buf)?;
        buf.clear();
        counts.accounts += 1;

        // Activity: 45% quiet, 30% light, 17% warm, 8% hot.
        let heat = rng.below(100);
        let (n_events, mix): (u64, [u64; 3]) = if heat < 45 {
            (rng.below(2), [0, 5, 95])
        } else if heat < 75 {
            (
                (spec.events_per_account * 0.6) as u64 + rng.below(4),
                [1, 14, 85],
            )
        } else if heat < 92 {
            (
                (spec.events_per_account * 1.5) as u64 + rng.below(8),
                [4, 36, 60],
            )
        } else {
            (
                (spec.events_per_account * 4.0) as u64 + rng.below(20),
                [15, 40, 45],
            )
        };
        let n_contacts = 1 + rng.below(if heat >= 75 { 6 } else { 2 });
        for _ in 0..n_events {
            let roll = rng.below(100);
            let ty = if rng.chance(0.004) {
                *rng.pick(SIGNALS)
            } else if roll < mix[0] {
                *rng.pick(HIGH)
            } else if roll < mix[0] + mix[1] {
                *rng.pick(MEDIUM)
            } else {
                *rng.pick(LOW)
            };
            let at = if rng.chance(0.02) {
                Instant(spec.as_of.0 + (1 + rng.below(20 * 86_400) as i64) * MICROS_PER_SEC)
            } else {
                ago(spec.as_of, &mut rng, if heat >= 92 { 120 } else { 300 })
            };
            let contact = if rng.chance(0.2) {
                String::new()
            } else {
                format!("{id}-C{}", 1 + rng.below(n_contacts))
            };
            event_no += 1;
            let eid = format!("E{event_no}");
            let ts = at.to_string();
            csv_line(
                &mut buf,
                [
                    id.as_str(),
                    ts.as_str(),
                    ty,
                    contact.as_str(),
                    eid.as_str(),
                    "",
                ],
            );
            eng.write_all(&buf)?;
            buf.clear();
            counts.events += 1;
        }

        if rng.chance(0.25) {
            for _ in 0..1 + rng.below(2) {
                let ty = *rng.pick(TRIGGERS);
                let at = ago(spec.as_of, &mut rng, 200);
                let headline = if ty == "intent_surge" {
                    format!("Intent surge on {} at {name}", rng.pick(TOPICS))
                } else {
                    format!("{} at {name}", ty.replace('_', " "))
                };
                let (ts, strength) = (at.to_string(), format!("{}", 1 + rng.below(5)));
                csv_line(
                    &mut buf,
                    [
                        id.as_str(),
                        ts.as_str(),
                        ty,
                        "newsfeed",
                        headline.as_str(),
                        strength.as_str(),
                    ],
                );
                trg.write_all(&buf)?;
                buf.clear();
                counts.triggers += 1;
            }
        }

        if rng.chance(if heat >= 75 { 0.35 } else { 0.04 }) {
            deal_no += 1;
            let created = ago(spec.as_of, &mut rng, 300);
            let outcome = *rng.pick(&["open", "open", "won", "lost"]);
            let moved = Instant(
                (created.0 + rng.below(80 * 86_400) as i64 * MICROS_PER_SEC).min(spec.as_of.0),
            );
            let closed = if outcome == "open" {
                String::new()
            } else {
                moved.date_string()
            };
            let stage = match outcome {
                "open" => *rng.pick(&["discovery", "proposal", "negotiation"]),
                "won" => "closed_won",
                _ => "closed_lost",
            };
            let (did, amount) = (
                format!("D{deal_no:05}"),
                format!("{}", (5 + rng.below(200)) * 1000),
            );
            let (c, m) = (created.date_string(), moved.date_string());
            csv_line(
                &mut buf,
                [
                    did.as_str(),
                    id.as_str(),
                    stage,
                    amount.as_str(),
                    c.as_str(),
                    closed.as_str(),
                    m.as_str(),
                    outcome,
                    "platform",
                    "owner@example.com",
                ],
            );
            dls.write_all(&buf)?;
            buf.clear();
            counts.deals += 1;
        }
    }
    for mut w in [acc, eng, trg, dls] {
        w.flush()?;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let c1 = write_sample(d1.path(), &SampleSpec::default()).unwrap();
        let c2 = write_sample(d2.path(), &SampleSpec::default()).unwrap();
        assert_eq!(c1, c2);
        assert_eq!(c1.accounts, 300);
        assert!(
            c1.events > 1000 && c1.triggers > 30 && c1.deals > 10,
            "{c1:?}"
        );
        for f in [
            "accounts.csv",
            "engagement.csv",
            "triggers.csv",
            "deals.csv",
        ] {
            assert_eq!(
                std::fs::read(d1.path().join(f)).unwrap(),
                std::fs::read(d2.path().join(f)).unwrap()
            );
        }
    }
}
