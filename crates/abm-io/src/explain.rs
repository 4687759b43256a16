//! `abm explain`: the whole reasoning for one account, from the same code the bulk path runs.

use crate::columns::FileKind;
use crate::load::{parse_event, scan_seq, EventCols, LoadOptions, Rejects};
use crate::segment::{load_inputs, Inputs, Resolved};
use crate::source::InputSource;
use crate::IngestError;
use abm_core::assess::assess;
use abm_core::engagement::EngagementState;
use abm_core::explanation::{
    Explained, Explanation, FileLine, ObservedEvent, RejectedAccount, RejectedEvents, RejectedRow,
};
use abm_core::{Instant, Rules, ScoringModel};

pub use abm_core::explanation::MAX_IGNORED_LISTED;

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

/// The whole reasoning for one account, read from the input files as `abm segment` reads
/// them (stateless): its explanation, or the rejected rows when its own row was rejected.
pub fn explain(
    account_id: &str,
    paths: &Resolved,
    rules: &Rules,
    opts: &LoadOptions<'_>,
) -> Result<Explained, IngestError> {
    explain_inputs(account_id, &paths.inputs(), rules, opts).map(|(e, _)| e)
}

/// [`explain`] over files or bytes in memory (an account's facts passed in by an agent),
/// with every row the load rejected.
pub fn explain_inputs(
    account_id: &str,
    paths: &Inputs,
    rules: &Rules,
    opts: &LoadOptions<'_>,
) -> Result<(Explained, Rejects), IngestError> {
    let loaded = load_inputs(paths, rules, None, true, opts)?;
    let accounts_file = paths.accounts.name();
    let Some(idx) = loaded.accounts.index.get(account_id.as_bytes()) else {
        // A rejected account row says so, and why.
        let rows: Vec<RejectedRow> = loaded
            .rejects
            .rows
            .iter()
            .filter(|r| r.file == accounts_file && names(&r.record, account_id))
            .map(|r| RejectedRow {
                file: r.file.clone(),
                line: r.line,
                column: r.column.to_string(),
                reason: r.reason.to_string(),
            })
            .collect();
        if rows.is_empty() {
            return Err(IngestError::Config(format!(
                "account {account_id:?} is not in {accounts_file}"
            )));
        }
        return Ok((
            Explained::Rejected(RejectedAccount {
                account_id: account_id.to_string(),
                rows,
            }),
            loaded.rejects,
        ));
    };
    let table = &loaded.accounts.table;
    let account = table.get(idx);
    let model = ScoringModel::new(&rules.config.icp, table.schema());
    let facts = loaded.facts(idx, Instant::MIN);
    let a = assess(rules, &model, &account, &facts, true);

    // This account's events, with what happened to each, newest first.
    let mut events: Vec<(usize, ObservedEvent)> = Vec::new();
    let engagement_files: Vec<&InputSource> = paths
        .engagement
        .iter()
        .chain(&paths.more_engagement)
        .collect();
    for (file, p) in engagement_files.iter().enumerate() {
        let src = opts.open_input(p, FileKind::Engagement)?;
        let cols = EventCols::of(&src.projection);
        let mut st = EngagementState::default();
        let mut ignore = Rejects::default();
        let quiet = LoadOptions {
            strict: false,
            ..*opts
        };
        let name = p.name();
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
                let verdict = st.observe(rules, ev.code, ev.at, ev.contact, Instant::MIN);
                events.push((
                    file,
                    ObservedEvent {
                        at: ev.at,
                        code: ev.code,
                        contact: String::from_utf8_lossy(ev.contact).into_owned(),
                        verdict,
                        source: Some(FileLine {
                            file: name.clone(),
                            line: rec.line,
                        }),
                    },
                ));
                Ok(())
            },
            &mut ignore,
        )?;
    }
    let line = |e: &ObservedEvent| e.source.as_ref().map_or(0, |s| s.line);
    events.sort_by(|(fx, x), (fy, y)| y.at.cmp(&x.at).then(fx.cmp(fy)).then(line(x).cmp(&line(y))));
    let events = events.into_iter().map(|(_, e)| e).collect();

    let mut e = Explanation::new(rules, &model, &account, &facts, &a, a.cluster, events);
    e.source = Some(FileLine {
        file: accounts_file,
        line: account.line(),
    });
    e.engagement.files = engagement_files.iter().map(|p| p.name()).collect();
    // Events of this account that were rejected (an unknown type, a bad date, …) are not in
    // the count: say so, and why.
    if let Some(p) = &paths.engagement {
        let file = p.name();
        let mut why: Vec<RejectedEvents> = Vec::new();
        for r in loaded
            .rejects
            .rows
            .iter()
            .filter(|r| r.file == file && names(&r.record, account_id))
        {
            let reason = format!("{}: {}", r.column, r.reason);
            match why.iter_mut().find(|w| w.reason == reason) {
                Some(w) => w.rows += 1,
                None => why.push(RejectedEvents { reason, rows: 1 }),
            }
        }
        e.engagement.rejected = why;
    }
    Ok((Explained::Assessed(Box::new(e)), loaded.rejects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{write_sample, SampleSpec};
    use std::io::Write as _;
    use std::path::Path;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// `abm sample` data with what the sample lacks: customers (won deals), deals closed or
    /// changed after an earlier as_of, a stalled deal, rejected account and event rows.
    pub(super) fn sample(dir: &Path, accounts: u64, seed: u64) -> Resolved {
        let spec = SampleSpec {
            accounts,
            seed,
            ..SampleSpec::default()
        };
        write_sample(dir, &spec).unwrap();
        append(
            &dir.join("deals.csv"),
            "X1,ACC-0002,closed_won,50000,2026-03-01,2026-10-01,2026-10-01,won,platform,o@x\n\
             X2,ACC-0002,closed_lost,9000,2026-02-01,2026-10-20,2026-10-20,lost,platform,o@x\n\
             X3,ACC-0003,negotiation,70000,2026-01-10,,2026-02-01,open,platform,o@x\n\
             X4,ACC-0004,closed_won,1000,2026-09-01,2026-12-01,2026-12-01,won,platform,o@x\n\
             X5,ACC-0006,proposal,1000,2026-12-01,,,open,platform,o@x\n",
        );
        append(
            &dir.join("accounts.csv"),
            "ACC-BAD,Bad Row,bad.example,software,many,1,US,1999,,\n",
        );
        append(
            &dir.join("engagement.csv"),
            "ACC-0001,not a date,meeting,C9,EX1,\nACC-0001,2026-10-01,telepathy,C9,EX2,\n",
        );
        InputPathsFor(dir).resolve()
    }

    struct InputPathsFor<'a>(&'a Path);
    impl InputPathsFor<'_> {
        fn resolve(&self) -> Resolved {
            crate::segment::InputPaths::default()
                .resolve(Some(self.0))
                .unwrap()
        }
    }

    pub(super) fn ids(paths: &Resolved) -> Vec<String> {
        let text = std::fs::read_to_string(&paths.accounts).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    }
}

/// Snapshots of the text and of the JSON for sample accounts that, between them, go through
/// every part of an explanation. `ABM_BLESS=1 cargo test -p abm-io explain` rewrites them
/// (review the diff: the text is a user-facing output). The text snapshot is what the prose
/// builder that `Explanation::to_text` replaced wrote (the two were compared byte for byte
/// over every account of two samples, at four dates and under three configs, in 9eda9ab).
#[cfg(test)]
mod snapshots {
    use super::*;
    use abm_core::Config;
    use std::path::Path;

    const FEATURES: &[&str] = &[
        "was rejected",
        "Customer: ",
        "after as_of (open then)",
        "stalled: no stage change",
        "created after as_of, ignored",
        "more not listed",
        "rejected (not read)",
        "Micro-segment: ",
        "Checkpoint: conflict",
        "Suggestion (no checkpoint)",
        "demotion signal",
        "because: active open deal",
        "distinct engaged contacts",
    ];

    fn check(name: &str, got: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/testdata")
            .join(name);
        if std::env::var("ABM_BLESS").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (ABM_BLESS=1 writes it)", path.display()));
        if want != got {
            let line = want
                .lines()
                .zip(got.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(got.lines().count()));
            panic!(
                "{name} differs from the snapshot at line {} (ABM_BLESS=1 rewrites it):\n  want {:?}\n  got  {:?}",
                line + 1,
                want.lines().nth(line),
                got.lines().nth(line)
            );
        }
    }

    #[test]
    fn sample_explanations_match_their_snapshots() {
        let d = tempfile::tempdir().unwrap();
        let paths = super::tests::sample(d.path(), 120, 7);
        let config = Config::default();
        let opts = LoadOptions::new(&config);
        let dir = d.path().display().to_string();
        let (mut text, mut json) = (String::new(), String::new());
        let mut in_json = 0;
        for as_of in ["2026-11-01", "2026-10-05"] {
            let rules = Rules::compile(&config, Instant::parse(as_of).unwrap()).unwrap();
            let mut left: Vec<&str> = FEATURES.to_vec();
            for id in super::tests::ids(&paths) {
                let e = explain(&id, &paths, &rules, &opts).unwrap();
                let t = e.to_text();
                if !left.iter().any(|f| t.contains(f)) {
                    continue;
                }
                left.retain(|f| !t.contains(f));
                text.push_str(&t.replace(&dir, "DIR"));
                text.push_str("----\n");
                // The JSON of a few (every event is in it): the first ones and the rejected.
                if in_json >= 3 && !matches!(e, Explained::Rejected(_)) {
                    continue;
                }
                in_json += 1;
                json.push_str(
                    &serde_json::to_string_pretty(&e)
                        .unwrap()
                        .replace(&dir, "DIR"),
                );
                json.push('\n');
            }
        }
        check("explain_sample.txt", &text);
        check("explain_sample.json", &json);
    }
}
