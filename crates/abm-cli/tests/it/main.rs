//! Integration tests: they drive the real `abm` binary. One test binary (one link step).

mod analyze;
mod answers;
mod cli;
mod crm_exports;
mod parity;
mod probe;
mod real_data;
mod reliability;
mod segment;
mod state;
mod sync;
mod whatif;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn abm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_abm"));
    c.env_remove("ABM_CONFIG").env_remove("ABM_DATABASE_URL");
    c
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run abm");
    assert!(
        out.status.success(),
        "abm failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `abm sample --accounts n` into `dir/data`; the data directory.
pub fn sample_data(dir: &Path, accounts: u32) -> PathBuf {
    let data = dir.join("data");
    run_ok(
        abm()
            .args(["sample", "--accounts", &accounts.to_string(), "--out"])
            .arg(&data),
    );
    data
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A test part that needs a resource this machine lacks: a visible skip on a developer's
/// machine, a failure under CI (`CI=true`), where `.ci/run` provides every resource.
pub fn skip_or_fail(what: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what}: {why}, and CI=true: .ci/run must provide it");
    }
    eprintln!("SKIPPED {what}: {why}");
}

/// `../shared` relative to the workspace, if present.
pub fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    p.is_dir().then(|| p.canonicalize().unwrap())
}

/// Parse a CSV file into header + rows (via the project's own scanner).
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read(path).unwrap();
    let mut rows = Vec::new();
    abm_io::csv::for_each_record(&text, 1, |r| {
        rows.push(
            (0..r.len())
                .map(|i| String::from_utf8(r.get(i).to_vec()).unwrap())
                .collect::<Vec<_>>(),
        )
    });
    let header = rows.remove(0);
    (header, rows)
}
