//! The dashboard in a real browser: `abm serve` on a SQLite database seeded with the
//! 100,000-account sample (imported a slice of events at a time, a run after each), driven by
//! `dashboard_browser.py` (Selenium, headless Chromium, chromedriver). Screenshots of every
//! page go to target/screenshots/.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    for bin in ["/usr/bin/chromedriver"] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "{bin} is missing (apt-get install chromium-driver)"
            ));
        }
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("chromium is missing (apt-get install chromium)".into());
    }
    let ok = std::process::Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| "python3 lacks selenium (pip install selenium)".into())
}

/// The last line of stdout: a token's secret.
fn token(db: &Path, role: &str, name: &str) -> String {
    let out = run_ok(
        abm()
            .args(["token", "create", "--role", role, "--name", name, "--db"])
            .arg(db),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

#[test]
#[ignore = "needs Chromium and chromedriver (and python3 selenium; run by .ci/run)"]
fn a_reviewer_and_a_viewer_in_a_real_browser() {
    if let Some(why) = missing() {
        return skip_or_fail("the dashboard's browser test", &why);
    }
    let dir = tempfile::tempdir().unwrap();
    let data = sample_data(dir.path(), 100_000);
    let db = dir.path().join("abm.db");
    // Import the events in two slices with a run after each, so there is history, movements
    // and pending checkpoints.
    let events = std::fs::read_to_string(data.join("engagement.csv")).unwrap();
    let (header, rows) = events.split_once('\n').unwrap();
    let cut = "2026-09-15";
    let (mut early, mut late) = (format!("{header}\n"), format!("{header}\n"));
    for line in rows.lines() {
        let at = line.split(',').nth(1).unwrap();
        if at < cut {
            early.push_str(line);
            early.push('\n');
        } else {
            late.push_str(line);
            late.push('\n');
        }
    }
    let slices = dir.path().join("slices");
    std::fs::create_dir_all(&slices).unwrap();
    std::fs::write(slices.join("early.csv"), early).unwrap();
    std::fs::write(slices.join("late.csv"), late).unwrap();
    run_ok(
        abm()
            .args(["import", "--accounts"])
            .arg(data.join("accounts.csv"))
            .arg("--engagement")
            .arg(slices.join("early.csv"))
            .arg("--triggers")
            .arg(data.join("triggers.csv"))
            .arg("--deals")
            .arg(data.join("deals.csv"))
            .arg("--rejected")
            .arg(dir.path().join("rejected.csv"))
            .arg("--db")
            .arg(&db),
    );
    run_ok(abm().args(["run", "--as-of", cut, "--db"]).arg(&db));
    run_ok(
        abm()
            .args(["import", "--engagement"])
            .arg(slices.join("late.csv"))
            .arg("--rejected")
            .arg(dir.path().join("rejected2.csv"))
            .arg("--db")
            .arg(&db),
    );
    run_ok(
        abm()
            .args(["run", "--as-of", abm_io::sample::SAMPLE_AS_OF, "--db"])
            .arg(&db),
    );
    let reviewer = token(&db, "reviewer", "rita");
    let viewer = token(&db, "viewer", "vic");
    let mut child = abm()
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("abm serve says where it listens");
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/state/dashboard_browser.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(format!("http://{addr}"))
        .arg(&reviewer)
        .arg(&viewer)
        .arg(&shots)
        .output()
        .unwrap();
    run_ok(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let _ = child.wait();
    let mut log = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(2)) {
        log.push(l);
    }
    assert!(
        out.status.success(),
        "the browser flows failed:\n{}\n{}\nserver log (last lines):\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log.iter()
            .rev()
            .take(30)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The request log: the pages' server time (reported, not asserted: no timing asserts).
    for line in log.iter().filter(|l| l.contains("latency_ms")) {
        if !line.contains("/assets/") {
            eprintln!("{line}");
        }
    }
    assert!(
        !log.iter()
            .any(|l| l.contains(&reviewer) || l.contains(&viewer)),
        "no token in the log"
    );
    for name in [
        "signin",
        "overview",
        "accounts",
        "account",
        "review",
        "runs",
        "transitions",
    ] {
        assert!(shots.join(format!("{name}.png")).is_file(), "{name}.png");
    }
}
