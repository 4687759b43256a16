//! Issue 13 ("right answers on real data"): each case from the issue, as a regression test.

use super::*;
use serde_json::Value;
use std::collections::BTreeMap;

pub fn segment_dir(d: &Path, as_of: &str, extra: &[&str]) -> (PathBuf, Output) {
    let out = d.join("out");
    let o = run_ok(
        abm()
            .arg("segment")
            .arg(d)
            .args(["--as-of", as_of, "--out"])
            .arg(&out)
            .args(extra),
    );
    (out, o)
}

fn summary(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("cluster_summary.json")).unwrap()).unwrap()
}

/// Column `name` of every row, keyed by account id.
pub fn column(out: &Path, name: &str) -> BTreeMap<String, String> {
    let (h, rows) = read_csv(&out.join("cluster_assignments.csv"));
    let i = h.iter().position(|c| c == name).unwrap();
    rows.into_iter()
        .map(|r| (r[0].clone(), r[i].clone()))
        .collect()
}

const THIN_ACCOUNTS: &str = "account_id,name,industry,country
T01,Alpha,software,US
T02,Beta,software,Brazil
T03,Gamma,fintech,
T04,Delta,retail,US
T05,Epsilon,retail,Brazil
T06,Zeta,,Germany
T07,Eta,healthcare,Canada
T08,Theta,mining,Chile
T09,Iota,telecom,Brazil
T10,Kappa,medical,Ireland
";

/// Issue 13, "everything lands in Monitor Only out of the box": criteria over fields the input
/// does not have (employees, annual_revenue, tech_stack) are left out of the points possible,
/// and the default industry and country criteria are graded, so an accounts file with only
/// account_id, name, industry, country spreads over all five tiers with the default config;
/// the summary names the criteria without data.
#[test]
fn thin_accounts_spread_over_the_tiers_and_the_summary_names_criteria_without_data() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "accounts.csv", THIN_ACCOUNTS);
    let (out, o) = segment_dir(d.path(), "2026-11-01", &[]);
    let tiers = column(&out, "tier");
    // Of 45 possible: industry 30 (core) / 20 (adjacent) / 10 (reachable) / 0, country 15
    // (core market) / 8 (secondary) / 0. An empty field is neutral (T03: fintech, no country
    // → 30 of 30).
    let want = [
        ("T01", "A"), // software, US: 45
        ("T02", "B"), // software, Brazil: 30 → 66.7
        ("T03", "A"),
        ("T04", "C"), // retail, US: 25 → 55.6
        ("T05", "E"), // retail, Brazil: 10 → 22.2
        ("T06", "A"),
        ("T07", "A"),
        ("T08", "E"),
        ("T09", "D"), // telecom, Brazil: 20 → 44.4
        ("T10", "C"), // medical, Ireland: 28 → 62.2
    ];
    for (id, t) in want {
        assert_eq!(tiers[id], t, "{id}: {tiers:?}");
    }
    let got: std::collections::BTreeSet<&str> = tiers.values().map(|s| s.as_str()).collect();
    assert_eq!(got.len(), 5, "all five tiers: {tiers:?}");
    let s = summary(&out);
    assert_eq!(
        s["criteria_without_data"],
        serde_json::json!(["employees", "annual_revenue", "tech_stack"])
    );
    assert_eq!(s["monitor_only_count"], 3, "{s}");
    assert!(s.get("notes").is_none(), "{s}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("criteria without data (left out of the points possible): employees, annual_revenue, tech_stack"),
        "{stdout}"
    );
    // The rationale names the empty field of one account; nothing about the others.
    let rationale = column(&out, "rationale");
    assert!(
        rationale["T03"].starts_with("tier A (score, missing country)"),
        "{rationale:?}"
    );
    assert!(
        rationale["T01"].starts_with("tier A (score)"),
        "{rationale:?}"
    );
}

/// The same thin file with graded points per value (item 6) spreads over all five tiers.
#[test]
fn graded_industry_and_country_spread_thin_accounts_over_a_to_e() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "accounts.csv", THIN_ACCOUNTS);
    let cfg = write(
        d.path(),
        "abm.toml",
        r#"
[[icp.criteria]]
kind = "in"
field = "industry"
points = { software = 30, fintech = 25, healthcare = 15, retail = 5 }

[[icp.criteria]]
kind = "in"
field = "country"
points = { US = 15, Germany = 12, Canada = 10, Brazil = 5 }
"#,
    );
    let (out, _) = segment_dir(d.path(), "2026-11-01", &["--config", cfg.to_str().unwrap()]);
    let tiers = column(&out, "tier");
    let got: std::collections::BTreeSet<&str> = tiers.values().map(|s| s.as_str()).collect();
    assert_eq!(got.len(), 5, "{tiers:?}");
}

/// Issue 13: "the summary says only '0 accounts, below the recommended …', never why".
#[test]
fn a_degenerate_outcome_is_explained_in_the_summary() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry\nM1,One,agriculture\nM2,Two,mining\n",
    );
    let (out, o) = segment_dir(d.path(), "2026-11-01", &[]);
    let s = summary(&out);
    assert_eq!(s["monitor_only_count"], 2);
    assert_eq!(
        s["notes"][0],
        "every account is in Monitor Only: no score above 0; criteria without data: \
         employees, annual_revenue, country, tech_stack"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("note: every account is in Monitor Only"),
        "{stdout}"
    );
}

/// `missing = "zero"` makes an empty field earn 0 of its points; `explain` shows how each
/// criterion entered the score.
#[test]
fn missing_zero_and_the_explanation_of_missing_fields() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "accounts.csv", THIN_ACCOUNTS);
    let o = run_ok(
        abm()
            .args(["explain", "T03"])
            .arg(d.path())
            .args(["--as-of", "2026-11-01"]),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("ICP score 100"), "{text}");
    assert!(
        text.contains("country = (missing: left out of this account's points possible)"),
        "{text}"
    );
    assert!(
        text.contains("employees = (no data: no input has this field"),
        "{text}"
    );
    assert!(
        text.contains("criteria without data (no input has the field; left out of the points possible for every account): employees, annual_revenue, tech_stack"),
        "{text}"
    );
    let cfg = write(d.path(), "abm.toml", "[icp]\nmissing = \"zero\"\n");
    let (out, _) = segment_dir(d.path(), "2026-11-01", &["--config", cfg.to_str().unwrap()]);
    // fintech 30 of 45 (country empty: 0 of 15) = 66.7 → B.
    assert_eq!(column(&out, "icp_score")["T03"], "66.7");
    assert_eq!(column(&out, "tier")["T03"], "B");
}

/// A final export (as of 2026-06-01) of a small timeline, and what the export of each earlier
/// day looked like (the "live" export: only what had happened by then; deals closed later
/// were open, in their last open stage, with no stage change since creation — except D4,
/// whose final row carries its stage history, so its live rows show the stage of each day).
pub mod timeline {
    use super::*;

    pub const DATES: &[&str] = &["2026-02-15", "2026-03-20", "2026-04-20", "2026-05-01"];
    pub const IDS: &[&str] = &["A1", "A2", "A3", "A4", "A5"];
    const ACCOUNTS: &str = "account_id,name,industry,icp_score,icp_tier
A1,One,software,90,A
A2,Two,software,70,B
A3,Three,software,55,C
A4,Four,software,75,B
A5,Five,software,85,A
";
    const EVENTS: &[&str] = &[
        "A2,2026-03-10,meeting,c1",
        "A2,2026-04-20,email_reply,c2",
        "A3,2026-02-01,website_visit,c9",
        "A1,2026-05-20,demo,c3",
    ];
    const TRIGGERS: &[&str] = &["A3,2026-04-15,funding_round,news,A3 raises"];
    /// deal_id, account, stage (final), created, closed (final), outcome (final).
    const DEALS: &[(&str, &str, &str, &str, &str, &str)] = &[
        // The issue's one-deal case: open at as_of 2026-03-20, lost later.
        (
            "D1",
            "A1",
            "closed_lost",
            "2026-03-01",
            "2026-04-10",
            "lost",
        ),
        ("D2", "A4", "closed_won", "2026-01-10", "2026-03-25", "won"),
        ("D3", "A3", "discovery", "2026-04-01", "", "open"),
        ("D4", "A5", "Closed Won", "2026-01-05", "2026-05-10", "won"),
    ];
    /// D4's stage history (stage, entered): without it, D4 would read as stalled since its
    /// creation on every date before its close.
    pub const D4_HISTORY: &[(&str, &str)] = &[
        ("discovery", "2026-01-05"),
        ("proposal", "2026-03-10"),
        ("negotiation", "2026-04-15"),
        ("Closed Won", "2026-05-10"),
    ];

    fn history(by: impl Fn(&str) -> bool) -> String {
        D4_HISTORY
            .iter()
            .filter(|(_, at)| by(at))
            .map(|(st, at)| format!("{st}@{at}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    fn write_set(dir: &Path, as_of: Option<&str>) {
        std::fs::create_dir_all(dir).unwrap();
        write(dir, "accounts.csv", ACCOUNTS);
        let by = |d: &str| as_of.is_none_or(|a| d <= a);
        let mut ev = String::from("account_id,occurred_at,type,contact_id\n");
        for e in EVENTS.iter().filter(|e| by(e.split(',').nth(1).unwrap())) {
            ev.push_str(e);
            ev.push('\n');
        }
        write(dir, "engagement.csv", &ev);
        let mut tr = String::from("account_id,occurred_at,type,source,headline\n");
        for t in TRIGGERS.iter().filter(|t| by(t.split(',').nth(1).unwrap())) {
            tr.push_str(t);
            tr.push('\n');
        }
        write(dir, "triggers.csv", &tr);
        let mut dl = String::from(
            "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome,stage_history\n",
        );
        for (id, acc, stage, created, closed, outcome) in DEALS {
            if !by(created) {
                continue;
            }
            let line = if *id == "D4" {
                // Its row as of that day: the stage it was in, entered when, and the history
                // so far.
                let (st, at) = D4_HISTORY.iter().rev().find(|(_, at)| by(at)).unwrap();
                let (closed, outcome) = if *st == "Closed Won" {
                    (*at, "won")
                } else {
                    ("", "open")
                };
                format!(
                    "{id},{acc},{st},1000,{created},{closed},{at},{outcome},{}\n",
                    history(by)
                )
            } else if !closed.is_empty() && by(closed) {
                format!("{id},{acc},{stage},1000,{created},{closed},{closed},{outcome},\n")
            } else {
                // Open on the day of this export: its last (open) stage, no change since.
                format!("{id},{acc},proposal,1000,{created},,{created},open,\n")
            };
            dl.push_str(&line);
        }
        write(dir, "deals.csv", &dl);
    }

    /// The final export, in `dir`.
    pub fn final_export(dir: &Path) {
        write_set(dir, None)
    }

    /// The export as it was on `as_of`, in `dir`.
    pub fn live_export(dir: &Path, as_of: &str) {
        write_set(dir, Some(as_of))
    }
}

/// Issue 13, "deals are read as of today, not as of --as-of": replaying a timeline from one
/// final export gives, at each date, the clusters that the export of that date gave.
#[test]
fn segment_replayed_from_the_final_export_agrees_with_live_exports() {
    let d = tempfile::tempdir().unwrap();
    let fin = d.path().join("final");
    timeline::final_export(&fin);
    let cols = [
        "tier",
        "engagement_level",
        "has_triggers",
        "cluster",
        "promotion_triggers",
        "program_type",
    ];
    for as_of in timeline::DATES {
        let live = d.path().join(format!("live-{as_of}"));
        timeline::live_export(&live, as_of);
        let (a, _) = segment_dir(&fin, as_of, &[]);
        let replay: Vec<_> = cols.iter().map(|c| column(&a, c)).collect();
        let (b, _) = segment_dir(&live, as_of, &[]);
        let lived: Vec<_> = cols.iter().map(|c| column(&b, c)).collect();
        assert_eq!(replay, lived, "as of {as_of}");
        if *as_of == "2026-03-20" {
            // D1 was open (and active) then, lost on 04-10: Active Focus, not Cluster ICP.
            assert_eq!(replay[3]["A1"], "active_focus");
            // D2 (created 01-10, won 03-25) was open and stalled then.
            assert_eq!(replay[1]["A4"], "none");
        }
        if *as_of != "2026-02-15" {
            // D4's history: in proposal since 03-10, negotiation since 04-15 — active, not
            // stalled since its creation on 01-05 (what its final row alone would say).
            assert_eq!(replay[1]["A5"], "high", "as of {as_of}");
            assert_eq!(replay[3]["A5"], "active_focus", "as of {as_of}");
            let text = String::from_utf8_lossy(
                &run_ok(
                    abm()
                        .args(["explain", "A5"])
                        .arg(&fin)
                        .args(["--as-of", as_of]),
                )
                .stdout,
            )
            .into_owned();
            let stage = if *as_of == "2026-03-20" {
                "D4 proposal open created 2026-01-05 last change 2026-03-10 → active (High engagement); won 2026-05-10 after as_of (open then); stage change 2026-04-15 after as_of, not read (stage history)"
            } else {
                "D4 negotiation open created 2026-01-05 last change 2026-04-15 → active (High engagement); won 2026-05-10 after as_of (open then); stage change 2026-05-10 after as_of, not read (stage history)"
            };
            assert!(text.contains(stage), "{text}");
        }
        // The demo of 05-20 is after every date: never counted.
        let text = String::from_utf8_lossy(
            &run_ok(
                abm()
                    .args(["explain", "A1"])
                    .arg(&fin)
                    .args(["--as-of", as_of]),
            )
            .stdout,
        )
        .into_owned();
        assert!(
            text.contains("not counted: 1 after as_of, ignored"),
            "{text}"
        );
        if *as_of == "2026-03-20" {
            assert!(
                text.contains("D1 open open created 2026-03-01 last change 2026-03-01 → active (High engagement); lost 2026-04-10 after as_of (open then); stage change 2026-04-10 after as_of, not read"),
                "{text}"
            );
        }
    }
}

/// Issue 13, "customers are invisible": a lead that won on 2018-02-26 was told "SDR: validate
/// the challenge" on 02-28; a customer with many orders was "medium / Future Pipeline".
#[test]
fn a_won_deal_makes_a_customer_with_expansion_and_renewal() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry,icp_score,icp_tier\nL1,Lead,software,70,B\nL2,Buyer,software,70,B\nL3,Prospect,software,70,B\n",
    );
    write(
        d.path(),
        "engagement.csv",
        "account_id,occurred_at,type,contact_id\nL1,2018-02-20,email_reply,c1\nL2,2018-02-10,email_reply,c2\nL3,2018-02-10,email_reply,c3\n",
    );
    let mut deals = String::from(
        "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome\n\
         W1,L1,closed_won,5000,2018-01-10,2018-02-26,2018-02-26,won\n\
         X1,L1,closed_lost,5000,2017-06-10,2017-09-01,2017-09-01,lost\n",
    );
    for i in 0..67 {
        deals.push_str(&format!(
            "O{i},L2,closed_won,100,2015-01-01,2016-{:02}-01,2016-01-01,won\n",
            i % 12 + 1
        ));
    }
    write(d.path(), "deals.csv", &deals);
    let (out, _) = segment_dir(d.path(), "2018-02-28", &[]);
    let (na, prog, cl) = (
        column(&out, "next_action"),
        column(&out, "program_type"),
        column(&out, "cluster"),
    );
    assert_eq!(cl["L1"], "future_pipeline");
    assert_eq!(prog["L1"], "expansion");
    assert_eq!(
        na["L1"],
        "Account management: expand and renew; customer: 1 won deal (last 2018-02-26); \
         renewal due 2019-02-26; engaged now: propose an expansion"
    );
    assert!(
        na["L2"].starts_with("Account management: expand and renew; customer: 67 won deals (last 2016-12-01); renewal was due 2017-12-01: confirm it"),
        "{}",
        na["L2"]
    );
    assert!(
        column(&out, "rationale")["L1"].ends_with("; customer (1 won, last 2018-02-26; 1 lost)")
    );
    // A prospect is told what it was before.
    assert_eq!(prog["L3"], "sdr_marketing_nurture");
    assert!(
        na["L3"].starts_with("SDR: validate the challenge"),
        "{}",
        na["L3"]
    );
    // The day before the win, L1 was a prospect (its deal open, and stalled: no stage change
    // known since 01-10).
    let (out, _) = segment_dir(d.path(), "2018-02-25", &[]);
    assert_eq!(column(&out, "program_type")["L1"], "sdr_marketing_nurture");
    assert!(column(&out, "next_action")["L1"].starts_with("SDR: validate the challenge"));
    // Won and lost deals in the explanation.
    let text = String::from_utf8_lossy(
        &run_ok(
            abm()
                .args(["explain", "L1"])
                .arg(d.path())
                .args(["--as-of", "2018-02-28"]),
        )
        .stdout,
    )
    .into_owned();
    assert!(
        text.contains("W1 closed_won won created 2018-01-10"),
        "{text}"
    );
    assert!(text.contains("→ won 2018-02-26"), "{text}");
    assert!(
        text.contains("X1 closed_lost lost created 2017-06-10"),
        "{text}"
    );
    assert!(
        text.contains("Customer: 1 won deal(s) by as_of (last 2018-02-26), 1 lost; stays in future_pipeline with the expansion program"),
        "{text}"
    );
    // `[customers] mode = "off"` reads customers as prospects.
    let cfg = write(d.path(), "abm.toml", "[customers]\nmode = \"off\"\n");
    let (out, _) = segment_dir(d.path(), "2018-02-28", &["--config", cfg.to_str().unwrap()]);
    assert_eq!(column(&out, "program_type")["L1"], "sdr_marketing_nurture");
}

/// Issue 13, "customers": whitespace — the products a customer has not bought yet, when deals
/// carry products — in its next action and explanation; a product first sold after as_of is
/// not known then.
#[test]
fn a_customer_is_told_the_products_it_has_not_bought() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry,icp_score,icp_tier\nK1,Buyer,software,70,B\nK2,Other,software,70,B\n",
    );
    write(
        d.path(),
        "deals.csv",
        "deal_id,account_id,stage,amount,created_at,closed_at,last_stage_change_at,outcome,product\n\
         W1,K1,closed_won,5000,2018-01-10,2018-02-01,2018-02-01,won,Core\n\
         W2,K1,closed_lost,5000,2018-01-10,2018-02-01,2018-02-01,lost,Analytics\n\
         W3,K2,closed_won,5000,2017-01-10,2017-02-01,2017-02-01,won,Support\n\
         W4,K2,closed_won,5000,2017-01-10,2017-03-01,2017-03-01,won,core\n\
         W5,K2,discovery,5000,2018-06-01,,2018-06-01,open,Mobile\n",
    );
    let (out, _) = segment_dir(d.path(), "2018-03-01", &[]);
    let na = column(&out, "next_action");
    // The catalog: every product on a deal created by as_of (Mobile comes later).
    assert!(
        na["K1"].ends_with("; renewal due 2019-02-01; not yet bought: Analytics, Support"),
        "{}",
        na["K1"]
    );
    assert!(
        na["K2"].ends_with("; not yet bought: Analytics"),
        "{}",
        na["K2"]
    );
    let text = String::from_utf8_lossy(
        &run_ok(
            abm()
                .args(["explain", "K1", "--json"])
                .arg(d.path())
                .args(["--as-of", "2018-03-01"]),
        )
        .stdout,
    )
    .into_owned();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["customer"]["not_yet_bought"],
        serde_json::json!(["Analytics", "Support"]),
        "{v}"
    );
    // Later, Mobile is known; a configured catalog replaces the one from the deals.
    let (out, _) = segment_dir(d.path(), "2018-07-01", &[]);
    assert!(
        column(&out, "next_action")["K1"].contains("; not yet bought: Analytics, Mobile, Support")
    );
    let cfg = write(
        d.path(),
        "abm.toml",
        "[customers]\nproducts = [\"Core\", \"Cloud\"]\n",
    );
    let (out, _) = segment_dir(d.path(), "2018-03-01", &["--config", cfg.to_str().unwrap()]);
    let na = column(&out, "next_action");
    assert!(
        na["K1"].ends_with("; not yet bought: Cloud"),
        "{}",
        na["K1"]
    );
}

/// Issue 13, "the queue floods or freezes": tier D/E accounts with High engagement (the most
/// active buyers) stayed pending as conflicts for three years. They are a "re-score this
/// account" suggestion now, not a checkpoint; conflicts are raised for accounts in or entering
/// Active Focus.
#[test]
fn low_tier_high_engagement_is_a_rescore_suggestion_not_a_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry,icp_score,icp_tier\nD1,Busy,retail,40,D\nB1,Mixed,software,70,B\n\
         B2,Leaving,software,70,B\nC1,Mixed C,software,55,C\n",
    );
    write(
        d.path(),
        "engagement.csv",
        "account_id,occurred_at,type,contact_id\n\
         D1,2026-10-20,demo,c1\n\
         B1,2026-10-20,demo,c2\nB1,2026-10-21,no_priority,c2\n\
         B2,2026-10-20,demo,c4\nB2,2026-10-21,champion_left,c4\n\
         C1,2026-10-20,demo,c3\nC1,2026-10-21,champion_left,c3\n",
    );
    let (out, _) = segment_dir(d.path(), "2026-11-01", &[]);
    let cp = column(&out, "checkpoint");
    assert_eq!(cp["D1"], "");
    assert!(
        column(&out, "next_action")["D1"]
            .ends_with("; re-score this account: tier D with High engagement"),
        "{:?}",
        column(&out, "next_action")
    );
    // B1 enters Active Focus with a demotion signal no Active Focus rule acts on: a conflict.
    // B2's champion_left is an Active Focus demotion rule's signal: that rule proposes the
    // demotion on a stateful run, so no second checkpoint. C1 (Future Pipeline) is not raised.
    assert_eq!(cp["B1"], "conflict");
    assert_eq!(cp["B2"], "");
    assert_eq!(cp["C1"], "");
    assert_eq!(summary(&out)["checkpoints"]["conflict"], 1);
    let explain = |id: &str| {
        String::from_utf8_lossy(
            &run_ok(
                abm()
                    .args(["explain", id])
                    .arg(d.path())
                    .args(["--as-of", "2026-11-01"]),
            )
            .stdout,
        )
        .into_owned()
    };
    let text = explain("D1");
    assert!(
        text.contains(
            "Suggestion (no checkpoint): re-score this account — tier D with High engagement"
        ),
        "{text}"
    );
    let text = explain("B2");
    assert!(
        text.contains(
            "Signals disagree (no checkpoint: a demotion rule of active_focus acts on this signal"
        ),
        "{text}"
    );
    // `conflict_clusters` widens it again.
    let cfg = write(
        d.path(),
        "abm.toml",
        "[checkpoints]\nconflict_clusters = [\"active_focus\", \"future_pipeline\"]\n",
    );
    let (out, _) = segment_dir(d.path(), "2026-11-01", &["--config", cfg.to_str().unwrap()]);
    assert_eq!(column(&out, "checkpoint")["C1"], "conflict");
}

/// Issue 13: "`explain ID` on a rejected account says it 'is not in' the file; an account whose
/// events were rejected shows 'events: 0 in the file'".
#[test]
fn explain_says_when_an_account_or_its_events_were_rejected() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry,employees\nA1,Acme,software,1000\nA2,Bad Number Inc,software,lots\n",
    );
    write(
        d.path(),
        "engagement.csv",
        "account_id,occurred_at,type,contact_id\nA1,2026-10-01,teleportation,c1\nA1,2026-10-02,teleportation,c1\nA1,2026-13-45,demo,c1\n",
    );
    let explain = |id: &str| {
        String::from_utf8_lossy(
            &run_ok(
                abm()
                    .args(["explain", id])
                    .arg(d.path())
                    .args(["--as-of", "2026-11-01"]),
            )
            .stdout,
        )
        .into_owned()
    };
    let text = explain("A2");
    assert!(text.contains("Account A2 was rejected"), "{text}");
    assert!(text.contains("line 3, column employees"), "{text}");
    let text = explain("A1");
    assert!(text.contains("events: 0 in the file, 0 counted"), "{text}");
    assert!(
        text.contains("rejected (not read): 2 event row(s), type:"),
        "{text}"
    );
    assert!(
        text.contains("rejected (not read): 1 event row(s), occurred_at:"),
        "{text}"
    );
}

/// Issue 13: "`explain` lists the 40 newest events; in a backtest those are all 'after as_of,
/// ignored' and the 31 counted ones are hidden. A trigger after as_of is labelled 'outside the
/// window'."
#[test]
fn explain_lists_counted_events_first_and_labels_what_is_after_as_of() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry,icp_score,icp_tier\nB1,Backtest,software,90,A\n",
    );
    let mut ev = String::from("account_id,occurred_at,type,contact_id\n");
    for i in 0..31 {
        ev.push_str(&format!(
            "B1,2018-01-{:02}T10:00:00,email_reply,c{}\n",
            i % 28 + 1,
            i % 2
        ));
    }
    for i in 0..45 {
        ev.push_str(&format!(
            "B1,2018-0{}-{:02}T10:00:00,meeting,c1\n",
            4 + i % 5,
            i % 28 + 1
        ));
    }
    write(d.path(), "engagement.csv", &ev);
    write(
        d.path(),
        "triggers.csv",
        "account_id,occurred_at,type,source,headline\nB1,2018-06-01,funding_round,news,later\nB1,2017-01-01,expansion,news,long ago\n",
    );
    let text = String::from_utf8_lossy(
        &run_ok(
            abm()
                .args(["explain", "B1"])
                .arg(d.path())
                .args(["--as-of", "2018-02-01"]),
        )
        .stdout,
    )
    .into_owned();
    assert!(
        text.contains("events: 76 in the file, 31 counted"),
        "{text}"
    );
    let counted = text.matches("counted (medium)").count();
    assert_eq!(counted, 31, "{text}");
    // Counted first, then the ignored ones, grouped and capped.
    let first_ignored = text.find("not counted: 45 after as_of, ignored").unwrap();
    assert!(
        text.rfind("counted (medium)").unwrap() < first_ignored,
        "{text}"
    );
    assert!(text.contains("… 35 more not listed"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("funding_round") && l.ends_with("after as_of, ignored")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("expansion") && l.ends_with("outside the window")),
        "{text}"
    );
}
