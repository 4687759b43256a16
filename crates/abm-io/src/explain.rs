//! `abm explain`: the whole reasoning for one account, from the same code the bulk path runs.

use crate::columns::FileKind;
use crate::load::{parse_event, scan_seq, EventCols, LoadOptions, Rejects};
use crate::segment::{load_all, Resolved};
use crate::IngestError;
use abm_core::assess::{self, assess};
use abm_core::engagement::{DealStatus, EngagementState, LevelBasis, Verdict};
use abm_core::rules::TriggerCond;
use abm_core::scoring::{format_score, Source};
use abm_core::{Cluster, Instant, Rules, ScoringModel};
use std::fmt::Write;

/// How many events `explain` lists (newest first); the rest are summarized.
pub const MAX_EVENTS_LISTED: usize = 40;

pub fn explain(
    account_id: &str,
    paths: &Resolved,
    rules: &Rules,
    opts: &LoadOptions<'_>,
) -> Result<String, IngestError> {
    let loaded = load_all(paths, rules, None, true, opts)?;
    let idx = loaded
        .accounts
        .index
        .get(account_id.as_bytes())
        .ok_or_else(|| {
            IngestError::Config(format!(
                "account {account_id:?} is not in {}",
                paths.accounts.display()
            ))
        })?;
    let table = &loaded.accounts.table;
    let account = table.get(idx);
    let model = ScoringModel::new(&rules.config.icp, table.schema());
    let facts = loaded.facts(idx, Instant::MIN);
    let a = assess(rules, &model, &account, &facts, true);

    // This account's events, with what happened to each.
    let mut events: Vec<(u64, Instant, String, String, Verdict)> = Vec::new();
    for p in paths.engagement.iter().chain(&paths.more_engagement) {
        let src = opts.open(p, FileKind::Engagement)?;
        let cols = EventCols::of(&src.projection);
        let mut st = EngagementState::default();
        let mut ignore = Rejects::default();
        let quiet = LoadOptions {
            strict: false,
            ..*opts
        };
        scan_seq(
            src,
            &quiet,
            |src, rec| {
                if rec.get(cols.account_id).trim_ascii() != account_id.as_bytes() {
                    return Ok(());
                }
                let Some(ev) = parse_event(src, rec, &cols, rules, &loaded.accounts.index)? else {
                    return Ok(());
                };
                let v = st.observe(rules, ev.code, ev.at, ev.contact, Instant::MIN);
                events.push((
                    rec.line,
                    ev.at,
                    rules.event_name(ev.code).to_string(),
                    String::from_utf8_lossy(ev.contact).into_owned(),
                    v,
                ));
                Ok(())
            },
            &mut ignore,
        )?;
    }
    events.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));

    let mut s = String::new();
    let name = account.name();
    let _ = writeln!(
        s,
        "Account {} — {} ({} line {})",
        account.id(),
        if name.is_empty() { "(no name)" } else { name },
        paths.accounts.display(),
        account.line()
    );
    let _ = writeln!(
        s,
        "as_of {} · config {}\n",
        rules.as_of,
        rules.config.hash()
    );

    // ICP
    let sc = &a.score;
    let _ = writeln!(
        s,
        "ICP score {} ({}) → tier {} ({})",
        sc.score_text(),
        if sc.score_source == Source::Input {
            "icp_score from the input"
        } else {
            "computed from the criteria"
        },
        sc.tier,
        if sc.tier_source == Source::Input {
            format!(
                "icp_tier from the input; the score gives {}",
                sc.tier_from_score
            )
        } else {
            let t = &rules.config.icp.tiers;
            format!(
                "A ≥ {}, B ≥ {}, C ≥ {}, D ≥ {}, else E",
                format_score(t.a),
                format_score(t.b),
                format_score(t.c),
                format_score(t.d)
            )
        }
    );
    let _ = writeln!(
        s,
        "  criteria{}:",
        if sc.score_source == Source::Input {
            " (for reference: the input score is used)"
        } else {
            ""
        }
    );
    for c in &sc.criteria {
        let _ = writeln!(
            s,
            "    {:>5}/{:<5} {} = {}   ({})",
            format_score(c.earned),
            format_score(c.possible),
            c.field,
            c.value.as_deref().unwrap_or("(missing)"),
            c.test
        );
    }
    if !sc.missing.is_empty() {
        let _ = writeln!(
            s,
            "  missing (enrich to improve the score): {}",
            sc.missing.join(", ")
        );
    }

    // Engagement
    let e = &rules.config.engagement;
    let _ = writeln!(
        s,
        "\nEngagement: {} (window {} days: {} .. {}, both inclusive)",
        a.level, e.window_days, rules.engagement_from, rules.as_of
    );
    let basis = match &a.basis {
        LevelBasis::Event { code, at } => {
            format!("{} event {} at {}", a.level, rules.event_name(*code), at)
        }
        LevelBasis::Contacts(n) => format!("{n} distinct engaged contacts"),
        LevelBasis::OpenDeal(i) => format!("active open deal {}", facts.deals[*i].deal_id),
        LevelBasis::Nothing => "no counted engagement".into(),
    };
    let _ = writeln!(s, "  because: {basis}");
    let _ = writeln!(
        s,
        "  engaged contacts: {} (Medium at {}, High at {})",
        a.engaged_contacts, e.medium_contacts, e.high_contacts
    );
    let counted = events
        .iter()
        .filter(|x| matches!(x.4, Verdict::Counted(_)))
        .count();
    let _ = writeln!(
        s,
        "  events: {} in the file, {} counted",
        events.len(),
        counted
    );
    for (line, at, ty, contact, v) in events.iter().take(MAX_EVENTS_LISTED) {
        let verdict = match v {
            Verdict::Counted(l) => format!("counted ({l})"),
            other => other.describe().to_string(),
        };
        let _ = writeln!(
            s,
            "    line {:<9} {}  {:<28} {:<16} {}",
            line,
            at,
            ty,
            if contact.is_empty() { "-" } else { contact },
            verdict
        );
    }
    if events.len() > MAX_EVENTS_LISTED {
        let _ = writeln!(
            s,
            "    … {} older events not listed",
            events.len() - MAX_EVENTS_LISTED
        );
    }
    if facts.deals.is_empty() {
        let _ = writeln!(s, "  deals: none");
    } else {
        let _ = writeln!(s, "  deals:");
        for d in facts.deals {
            let status = match d.status(rules, Instant::MIN) {
                DealStatus::Active => "active (High engagement)".to_string(),
                DealStatus::Stalled => format!(
                    "stalled: no stage change for {} days (≥ {})",
                    rules.as_of.days_since(d.last_change()),
                    e.stalled_after_days
                ),
                DealStatus::NotYetCreated => "created after as_of, ignored".into(),
                DealStatus::Closed => "closed".into(),
                DealStatus::BeforeFloor => "before the last demotion".into(),
            };
            let _ = writeln!(
                s,
                "    {} {} {} created {} last change {} → {}",
                d.deal_id,
                d.stage,
                d.outcome.as_str(),
                d.created_at.date_string(),
                d.last_change().date_string(),
                status
            );
        }
    }

    // Triggers
    let _ = writeln!(
        s,
        "\nTriggers: {} in the {}-day window ({} .. {})",
        a.triggers.len(),
        rules.config.triggers.window_days,
        rules.trigger_from,
        rules.as_of
    );
    let mut all: Vec<_> = facts.triggers.iter().collect();
    all.sort_by_key(|t| std::cmp::Reverse(t.at));
    for t in all {
        let _ = writeln!(
            s,
            "    {}  {:<20} {:<50} {}",
            t.at,
            rules.trigger_name(t.code),
            t.headline,
            if t.counts(rules, Instant::MIN) {
                "counted"
            } else {
                "outside the window"
            }
        );
    }
    if !a.signals.is_empty() {
        let _ = writeln!(s, "  demotion signals in the window:");
        for (c, at) in &a.signals {
            let _ = writeln!(s, "    {at}  {}", rules.event_name(*c));
        }
    }

    // Decision
    let _ = writeln!(s, "\nDecision table (first match wins):");
    for (i, row) in rules.decision.rows.iter().enumerate() {
        let n = i as u8 + 1;
        let why = if n == a.rule {
            "← matched".to_string()
        } else if n < a.rule {
            let mut no = vec![];
            if !row.tiers.contains(&sc.tier) {
                no.push(format!("tier {}", sc.tier));
            }
            if !row.levels.contains(&a.level) {
                no.push(format!("engagement {}", a.level));
            }
            match (row.triggers, a.has_triggers()) {
                (TriggerCond::Yes, false) => no.push("no triggers".into()),
                (TriggerCond::No, true) => no.push("has triggers".into()),
                _ => {}
            }
            format!("no: {}", no.join(", "))
        } else {
            String::new()
        };
        let _ = writeln!(s, "  {n}. {:<70} {why}", row.describe());
    }
    let _ = writeln!(
        s,
        "\nCluster: {} · program {}",
        a.cluster,
        rules.config.programs.of(a.cluster)
    );
    if a.cluster == Cluster::FuturePipeline {
        let _ = writeln!(
            s,
            "Micro-segment: {}",
            assess::micro_segment(rules, &account, &a, &facts)
        );
    }
    let _ = writeln!(
        s,
        "Next action: {}",
        assess::next_action(rules, &a, a.cluster)
    );
    if a.conflicts.is_empty() {
        let _ = writeln!(s, "Checkpoint: none");
    } else {
        for c in &a.conflicts {
            let _ = writeln!(s, "Checkpoint: conflict — {}", c.describe(rules));
        }
    }
    let _ = writeln!(
        s,
        "Movement: none in a stateless segment (see `abm run` and `abm history {}`)",
        account.id()
    );
    Ok(s)
}
