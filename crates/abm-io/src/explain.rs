//! `abm explain`: the whole reasoning for one account, from the same code the bulk path runs.

use crate::columns::FileKind;
use crate::load::Rejection;
use crate::load::{parse_event, scan_seq, EventCols, LoadOptions, Rejects};
use crate::segment::{load_all, Resolved};
use crate::IngestError;
use abm_core::assess::{self, assess};
use abm_core::engagement::{DealStatus, EngagementState, LevelBasis, Verdict};
use abm_core::rules::TriggerCond;
use abm_core::scoring::{format_score, CriterionStatus, Source};
use abm_core::{Cluster, Instant, Rules, ScoringModel};
use std::fmt::Write;

/// How many events `explain` lists per group of ignored events (newest first); counted events
/// are all listed, first.
pub const MAX_IGNORED_LISTED: usize = 10;

/// Whether a rejected row's raw record names the account (a CSV field or a JSON value equal
/// to the id).
fn names(record: &str, account_id: &str) -> bool {
    let t = record.trim_start();
    if t.starts_with('{') {
        return serde_json::from_str::<serde_json::Value>(t)
            .ok()
            .and_then(|v| {
                v.get("account_id")
                    .and_then(|x| x.as_str())
                    .map(|x| x.trim() == account_id)
            })
            .unwrap_or(false);
    }
    record
        .split(',')
        .any(|f| f.trim().trim_matches('"').trim() == account_id)
}

/// One event of the account: line, instant, type, contact, what happened to it.
/// (physical line, instant, type, contact, verdict, which engagement file).
type EventRow = (u64, Instant, String, String, Verdict, usize);

pub fn explain(
    account_id: &str,
    paths: &Resolved,
    rules: &Rules,
    opts: &LoadOptions<'_>,
) -> Result<String, IngestError> {
    let loaded = load_all(paths, rules, None, true, opts)?;
    let accounts_file = paths.accounts.display().to_string();
    let Some(idx) = loaded.accounts.index.get(account_id.as_bytes()) else {
        // A rejected account row says so, and why.
        let rejected: Vec<&Rejection> = loaded
            .rejects
            .rows
            .iter()
            .filter(|r| r.file == accounts_file && names(&r.record, account_id))
            .collect();
        if rejected.is_empty() {
            return Err(IngestError::Config(format!(
                "account {account_id:?} is not in {accounts_file}"
            )));
        }
        let mut s = format!(
            "Account {account_id} was rejected: its row is not in the assignments (see rejected_rows.csv).\n"
        );
        for r in rejected {
            let _ = writeln!(
                s,
                "  {} line {}, column {}: {}",
                r.file, r.line, r.column, r.reason
            );
        }
        return Ok(s);
    };
    let table = &loaded.accounts.table;
    let account = table.get(idx);
    let model = ScoringModel::new(&rules.config.icp, table.schema());
    let facts = loaded.facts(idx, Instant::MIN);
    let a = assess(rules, &model, &account, &facts, true);

    // This account's events, with what happened to each.
    let mut events: Vec<EventRow> = Vec::new();
    let engagement_files: Vec<&std::path::PathBuf> = paths
        .engagement
        .iter()
        .chain(&paths.more_engagement)
        .collect();
    for (file, p) in engagement_files.iter().enumerate() {
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
                    file,
                ));
                Ok(())
            },
            &mut ignore,
        )?;
    }
    events.sort_by(|x, y| y.1.cmp(&x.1).then(x.5.cmp(&y.5)).then(x.0.cmp(&y.0)));

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
        let (earned, value) = match c.status {
            CriterionStatus::Scored => {
                (format_score(c.earned), c.value.clone().unwrap_or_default())
            }
            CriterionStatus::MissingZero => (
                "0".to_string(),
                "(missing: earns 0, icp.missing = \"zero\")".to_string(),
            ),
            CriterionStatus::MissingNeutral => (
                "–".to_string(),
                "(missing: left out of this account's points possible)".to_string(),
            ),
            CriterionStatus::NoData => (
                "–".to_string(),
                "(no data: no input has this field; left out for every account)".to_string(),
            ),
        };
        let _ = writeln!(
            s,
            "    {:>5}/{:<5} {} = {}   ({})",
            earned,
            format_score(c.points),
            c.field,
            value,
            c.test
        );
    }
    let without = model.without_data();
    if !without.is_empty() {
        let _ = writeln!(
            s,
            "  criteria without data (no input has the field; left out of the points possible \
             for every account): {}",
            without.join(", ")
        );
    }
    if !sc.missing.is_empty() {
        let _ = writeln!(
            s,
            "  missing for this account (enrich to improve the score): {}",
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
    // Events of this account that were rejected (an unknown type, a bad date, …) are not in
    // the count above: say so, and why.
    if let Some(p) = &paths.engagement {
        let file = p.display().to_string();
        let mut why: Vec<(String, usize)> = Vec::new();
        for r in loaded
            .rejects
            .rows
            .iter()
            .filter(|r| r.file == file && names(&r.record, account_id))
        {
            let reason = format!("{}: {}", r.column, r.reason);
            match why.iter_mut().find(|w| w.0 == reason) {
                Some(w) => w.1 += 1,
                None => why.push((reason, 1)),
            }
        }
        for (reason, n) in why.iter().take(MAX_IGNORED_LISTED) {
            let _ = writeln!(s, "  rejected (not read): {n} event row(s), {reason}");
        }
    }
    // Counted evidence first, all of it; then what was ignored and why, grouped and capped.
    // With several engagement files, each line says which file it is in.
    let file_names: Vec<String> = engagement_files
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let row = |s: &mut String, (line, at, ty, contact, v, file): &EventRow| {
        let line = match file_names.len() > 1 {
            true => format!("{}:{line}", file_names[*file]),
            false => line.to_string(),
        };
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
            if contact.is_empty() {
                "-"
            } else {
                contact.as_str()
            },
            verdict
        );
    };
    for ev in events.iter().filter(|x| matches!(x.4, Verdict::Counted(_))) {
        row(&mut s, ev);
    }
    let mut groups: Vec<(&'static str, Vec<&EventRow>)> = Vec::new();
    for ev in events
        .iter()
        .filter(|x| !matches!(x.4, Verdict::Counted(_)))
    {
        let why = ev.4.describe();
        match groups.iter_mut().find(|g| g.0 == why) {
            Some(g) => g.1.push(ev),
            None => groups.push((why, vec![ev])),
        }
    }
    for (why, evs) in &groups {
        let _ = writeln!(s, "  not counted: {} {why}", evs.len());
        for ev in evs.iter().take(MAX_IGNORED_LISTED) {
            row(&mut s, ev);
        }
        if evs.len() > MAX_IGNORED_LISTED {
            let _ = writeln!(
                s,
                "    … {} more not listed",
                evs.len() - MAX_IGNORED_LISTED
            );
        }
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
                    rules.as_of.days_since(d.last_change_at(rules.as_of)),
                    e.stalled_after_days
                ),
                DealStatus::NotYetCreated => "created after as_of, ignored".into(),
                DealStatus::Closed => match d.closed_at {
                    Some(c) => format!("{} {}", d.outcome.as_str(), c.date_string()),
                    None => d.outcome.as_str().to_string(),
                },
                DealStatus::BeforeFloor => "before the last demotion".into(),
            };
            let mut later = String::new();
            if d.created_at <= rules.as_of {
                if d.outcome_at(rules.as_of) != d.outcome {
                    let _ = write!(
                        later,
                        "; {} {} after as_of (open then)",
                        d.outcome.as_str(),
                        d.closed_at.map(|c| c.date_string()).unwrap_or_default()
                    );
                }
                if let Some(t) = d.last_stage_change_at.filter(|t| *t > rules.as_of) {
                    let _ = write!(
                        later,
                        "; stage change {} after as_of, not read",
                        t.date_string()
                    );
                }
            }
            let _ = writeln!(
                s,
                "    {} {} {} created {} last change {} → {}{}",
                d.deal_id,
                d.stage_at(rules.as_of),
                d.outcome_at(rules.as_of).as_str(),
                d.created_at.date_string(),
                d.last_change_at(rules.as_of).date_string(),
                status,
                later
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
            if t.at > rules.as_of {
                "after as_of, ignored"
            } else if t.counts(rules, Instant::MIN) {
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
        a.program(rules, a.cluster)
    );
    if let Some(c) = &a.customer {
        let _ = writeln!(
            s,
            "Customer: {} won deal(s) by as_of (last {}), {} lost; stays in {} with the {} program",
            c.won,
            c.last_won.date_string(),
            c.lost,
            a.cluster,
            rules.config.customers.program
        );
    }
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
    let blocking: Vec<_> = a.blocking_conflicts(rules, a.cluster).collect();
    if blocking.is_empty() {
        let _ = writeln!(s, "Checkpoint: none");
    }
    for c in &a.conflicts {
        if blocking.contains(&c) {
            let _ = writeln!(s, "Checkpoint: conflict — {}", c.describe(rules));
        } else if a.rescore() == Some(c) {
            let _ = writeln!(
                s,
                "Suggestion (no checkpoint): re-score this account — {}",
                c.describe(rules)
            );
        } else {
            let _ = writeln!(
                s,
                "Signals disagree (no checkpoint: conflicts are raised for accounts in or \
                 entering {}): {}",
                rules
                    .config
                    .checkpoints
                    .conflict_clusters
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                c.describe(rules)
            );
        }
    }
    let _ = writeln!(
        s,
        "Movement: none in a stateless segment (see `abm run` and `abm history {}`)",
        account.id()
    );
    Ok(s)
}
