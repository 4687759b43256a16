//! Real export files through presets and config alone (issue 14): HubSpot and Salesforce
//! exports as the CRMs write them (fixtures/crm, built by fixtures/crm/make.py), an order-lines
//! file with M/D/YYYY dates and a constant event type, a leads file with DD-MM-YYYY dates.

use super::*;
use std::collections::BTreeMap;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crm")
}

fn expected(preset: &str) -> BTreeMap<String, String> {
    let (_, rows) = read_csv(&fixtures().join("expected_tiers.csv"));
    rows.into_iter()
        .filter(|r| r[0] == preset)
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect()
}

fn tiers(out: &Path) -> BTreeMap<String, String> {
    let (h, rows) = read_csv(&out.join("cluster_assignments.csv"));
    let id = h.iter().position(|c| c == "account_id").unwrap();
    let tier = h.iter().position(|c| c == "tier").unwrap();
    rows.into_iter()
        .map(|r| (r[id].clone(), r[tier].clone()))
        .collect()
}

fn assert_no_rejects(out: &Path, stdout: &str) {
    let (_, rows) = read_csv(&out.join("rejected_rows.csv"));
    assert!(rows.is_empty(), "{rows:?}");
    assert!(stdout.contains("rejected rows: 0"), "{stdout}");
}

#[test]
fn hubspot_exports_go_through_unedited() {
    let dir = fixtures().join("hubspot");
    let f = |o: &str| dir.join(format!("hubspot-crm-exports-all-{o}.csv"));
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let mut cmd = abm();
    cmd.args(["segment", "--preset", "hubspot", "--accounts"])
        .arg(f("companies"))
        .arg("--deals")
        .arg(f("deals"));
    for o in ["meetings", "calls", "emails", "notes", "tasks"] {
        cmd.arg("--engagement").arg(f(o));
    }
    let o = run_ok(cmd.args(["--as-of", "2026-11-01", "--out"]).arg(&out));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_no_rejects(&out, &stdout);
    let want = expected("hubspot");
    assert_eq!(want.len(), 60);
    assert_eq!(tiers(&out), want);
    // Meetings count as engagement: some account is High through one.
    let (_, rows) = read_csv(&out.join("cluster_assignments.csv"));
    assert!(rows
        .iter()
        .any(|r| r.iter().any(|v| v.contains("via meeting"))));
}

#[test]
fn salesforce_exports_go_through_unedited() {
    let dir = fixtures().join("salesforce");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = run_ok(
        abm()
            .args(["segment", "--preset", "salesforce", "--accounts"])
            .arg(dir.join("Account.csv"))
            .arg("--deals")
            .arg(dir.join("Opportunity.csv"))
            .arg("--engagement")
            .arg(dir.join("Task.csv"))
            .arg("--engagement")
            .arg(dir.join("Event.csv"))
            .args(["--as-of", "2026-11-01", "--out"])
            .arg(&out),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_no_rejects(&out, &stdout);
    let want = expected("salesforce");
    assert_eq!(want.len(), 60);
    assert_eq!(tiers(&out), want);
    // explain reads every engagement file and says which file each event line is in.
    let (_, rows) = read_csv(&dir.join("Task.csv"));
    let (h, _) = read_csv(&dir.join("Task.csv"));
    let acc = h.iter().position(|c| c == "AccountId").expect("AccountId");
    let id = rows[0][acc].clone();
    let o = run_ok(
        abm()
            .args(["explain", &id, "--preset", "salesforce", "--accounts"])
            .arg(dir.join("Account.csv"))
            .arg("--engagement")
            .arg(dir.join("Task.csv"))
            .arg("--engagement")
            .arg(dir.join("Event.csv"))
            .args(["--as-of", "2026-11-01"]),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("line Task.csv:2 "), "{text}");
}

#[test]
fn order_lines_and_leads_go_in_through_config_alone() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry,employees,annual_revenue,country\n\
         C1,Orders Co,Computer Software,\"1,200\",\"$50,000,000\",USA\n\
         C2,Leads Co,retail,10,\"$100,000\",BR\n",
    );
    // Order lines: M/D/YYYY dates, no type column (every row is an order).
    write(
        d.path(),
        "orders.csv",
        "InvoiceNo,CustomerID,InvoiceDate,Quantity\n\
         536365,C1,10/28/2026,6\n\
         536366,C1,9/5/2026,2\n\
         536367,C2,1/15/2025,1\n",
    );
    // Leads: DD-MM-YYYY dates, the funnel stage as the event type (mixed case).
    write(
        d.path(),
        "leads.csv",
        "lead_id,company,created,Stage\n\
         L1,C2,28-10-2026,Demo\n\
         L2,C2,01-10-2026,WEBINAR_ATTENDED\n\
         L3,C1,15-03-2025,mql\n",
    );
    write(
        d.path(),
        "abm.toml",
        "[engagement]\n\
         medium = [\"content_download\", \"webinar_attended\", \"email_reply\", \"outreach_response\", \
         \"linkedin_connection_accepted\", \"intent_page_visit\", \"event_attended\", \"order\"]\n\
         [inputs.date_formats]\n\
         orders = \"%m/%d/%Y\"\n\
         leads = \"%d-%m-%Y\"\n\
         [values.event_types]\n\
         mql = \"ignore\"\n\
         [columns.files.orders]\n\
         account_id = \"CustomerID\"\n\
         occurred_at = \"InvoiceDate\"\n\
         event_id = \"InvoiceNo\"\n\
         type = { value = \"order\" }\n\
         [columns.files.leads]\n\
         account_id = \"company\"\n\
         occurred_at = \"created\"\n\
         type = \"Stage\"\n\
         event_id = \"lead_id\"\n",
    );
    let out = d.path().join("out");
    let o = run_ok(
        abm()
            .arg("--config")
            .arg(d.path().join("abm.toml"))
            .arg("segment")
            .arg(d.path())
            .arg("--engagement")
            .arg(d.path().join("orders.csv"))
            .arg("--engagement")
            .arg(d.path().join("leads.csv"))
            .args(["--as-of", "2026-11-01", "--out"])
            .arg(&out),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_no_rejects(&out, &stdout);
    let (h, rows) = read_csv(&out.join("cluster_assignments.csv"));
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let by: BTreeMap<_, _> = rows.iter().map(|r| (r[0].clone(), r.clone())).collect();
    // C1: a recent order (medium); C2: a demo 4 days ago (high).
    assert_eq!(by["C1"][col("engagement_level")], "medium", "{rows:?}");
    assert_eq!(by["C1"][col("tier")], "A");
    assert_eq!(by["C2"][col("engagement_level")], "high", "{rows:?}");
}

#[test]
fn a_date_in_the_wrong_form_is_rejected_naming_the_format() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "accounts.csv", "account_id,name\nC1,X\n");
    write(
        d.path(),
        "engagement.csv",
        "account_id,occurred_at,type\nC1,13/28/2026,demo\nC1,\"1,2\",demo\n",
    );
    write(
        d.path(),
        "abm.toml",
        "[inputs.date_formats]\nengagement = \"%m/%d/%Y\"\n",
    );
    let out = d.path().join("out");
    run_ok(
        abm()
            .arg("--config")
            .arg(d.path().join("abm.toml"))
            .arg("segment")
            .arg(d.path())
            .args(["--as-of", "2026-11-01", "--out"])
            .arg(&out),
    );
    let (_, rows) = read_csv(&out.join("rejected_rows.csv"));
    assert_eq!(rows.len(), 2);
    assert!(rows[0][3].contains("%m/%d/%Y"), "{rows:?}");
}

#[test]
fn a_criterion_over_a_field_no_input_has_names_the_closest() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry,employees\nA1,X,software,100\n",
    );
    let cfg = write(
        d.path(),
        "typo.toml",
        "[[icp.criteria]]\nkind = \"in\"\nfield = \"industy\"\nvalues = [\"software\"]\npoints = 10\n",
    );
    let out = d.path().join("out");
    let o = abm()
        .arg("--config")
        .arg(&cfg)
        .arg("segment")
        .arg(d.path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("icp.criteria[0].field") && err.contains("\"industry\""),
        "{err}"
    );
    // A warning with --allow-missing-fields.
    let o = run_ok(
        abm()
            .arg("--config")
            .arg(&cfg)
            .arg("segment")
            .arg(d.path())
            .arg("--allow-missing-fields")
            .arg("--out")
            .arg(&out),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
    // The default criteria over a thin file are not an error (tech_stack, country absent).
    run_ok(abm().arg("segment").arg(d.path()).arg("--out").arg(&out));
    // A value map over an absent field is an error too.
    let cfg = write(d.path(), "v.toml", "[values.contry]\nUSA = \"US\"\n");
    let o = abm()
        .arg("--config")
        .arg(&cfg)
        .arg("segment")
        .arg(d.path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("values.contry"));
}

#[test]
fn run_before_any_import_leaves_no_database() {
    let d = tempfile::tempdir().unwrap();
    let o = abm()
        .current_dir(d.path())
        .args(["run", "--as-of", "2026-11-01"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("abm import"));
    assert!(!d.path().join("abm.db").exists());
}

/// A CRM association cell listing several companies ("123;456") belongs to the first listed
/// company that is known, in `segment` and in `import`; a list of unknown ones is rejected.
#[test]
fn association_cells_with_several_ids() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "accounts.csv",
        "account_id,name,industry,employees,annual_revenue,country\n\
         501,One Co,software,1000,50000000,US\n\
         502,Two Co,software,1000,50000000,US\n",
    );
    write(
        d.path(),
        "engagement.csv",
        "account_id,occurred_at,type,contact_id\n\
         999;502,2026-10-20T10:00:00Z,demo,c1\n\
         997;998,2026-10-20T10:00:00Z,demo,c2\n",
    );
    let out = d.path().join("out");
    run_ok(
        abm()
            .arg("segment")
            .arg(d.path())
            .args(["--as-of", "2026-11-01", "--quiet", "--out"])
            .arg(&out),
    );
    let (h, rows) = read_csv(&out.join("cluster_assignments.csv"));
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let level = |id: &str| {
        rows.iter()
            .find(|r| r[col("account_id")] == id)
            .map(|r| r[col("engagement_level")].clone())
            .unwrap()
    };
    assert_eq!(
        level("502"),
        "high",
        "the demo counts for the known company"
    );
    assert_eq!(level("501"), "none");
    let (_, rejected) = read_csv(&out.join("rejected_rows.csv"));
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0][3].contains("997;998"), "{rejected:?}");

    let db = d.path().join("abm.db");
    let o = run_ok(
        abm()
            .arg("import")
            .arg(d.path())
            .args(["--json", "--database"])
            .arg(&db)
            .arg("--rejected")
            .arg(d.path().join("rej.csv")),
    );
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["events_added"], 1, "{rep}");
}
