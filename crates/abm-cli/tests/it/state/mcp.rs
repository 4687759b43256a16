//! `abm mcp` driven by the official Python MCP client (`mcp` from PyPI, installed by
//! `.ci/run`), on both backends.

use super::*;

fn mcp_story(db: &Db) {
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let data = sample_data(dir.path(), 300);
    run_ok(
        abm()
            .arg("import")
            .arg(&data)
            .args(["--database", &url])
            .current_dir(dir.path()),
    );
    run_ok(abm().args([
        "run",
        "--as-of",
        abm_io::sample::SAMPLE_AS_OF,
        "--database",
        &url,
    ]));
    let later = abm_core::Instant(
        abm_core::Instant::parse(abm_io::sample::SAMPLE_AS_OF)
            .unwrap()
            .0
            + 120 * 86_400_000_000,
    )
    .to_string();
    run_ok(abm().args(["run", "--as-of", &later, "--database", &url]));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/state/mcp_client.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_abm"))
        .arg(&url)
        .env_remove("ABM_REVIEWER")
        .output();
    match out {
        Err(e) => crate::skip_or_fail(
            "abm mcp with the Python client",
            &format!("no python3: {e}"),
        ),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if !o.status.success() && err.contains("No module named 'mcp'") {
                crate::skip_or_fail(
                    "abm mcp with the Python client",
                    "python3 lacks the mcp package",
                );
                return;
            }
            assert!(o.status.success(), "the MCP client failed:\n{err}");
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
        }
    }
}

#[test]
#[ignore = "needs python3 with the mcp package (run by .ci/run)"]
fn mcp_on_sqlite() {
    mcp_story(&Db::sqlite());
}

#[test]
#[ignore = "needs PostgreSQL and python3 with the mcp package (run by .ci/run)"]
fn mcp_on_postgres() {
    if let Some(db) = Db::postgres("mcp") {
        mcp_story(&db);
    }
}
