//! The stateful commands (`import`, `run`, `review`, `summary`, `movements`, `history`,
//! `export`) on both backends. Every test runs on SQLite; the `_postgres` twin is ignored
//! (listed with what it needs) unless asked for with `--include-ignored`, as `.ci/run` does;
//! then it runs on `ABM_TEST_PG_URL` (each in its own schema, so tests run in parallel), and
//! without that URL it fails under `CI=true` and prints a skip message otherwise.

mod arrival;
mod bad_input;
mod crash;
mod current;
mod customers;
mod dashboard;
mod explain;
mod growth;
mod idempotency;
mod mcp;
mod queue;
mod replay;
mod scenarios;
mod segments;
mod serve;
mod signatures;

use super::*;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// One database for one test.
pub enum Db {
    Sqlite(tempfile::TempDir),
    Postgres {
        admin: String,
        schema: String,
        url: String,
    },
}

impl Db {
    pub fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh schema on `ABM_TEST_PG_URL`, or `None` (with a message) when it is not set.
    pub fn postgres(test: &str) -> Option<Db> {
        let Ok(admin) = std::env::var("ABM_TEST_PG_URL") else {
            crate::skip_or_fail(
                &format!("{test} on PostgreSQL"),
                "ABM_TEST_PG_URL is not set",
            );
            return None;
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            test.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(20)
                .collect::<String>()
        )
        .to_lowercase();
        let mut c = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("ABM_TEST_PG_URL={admin}: {e}"));
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-csearch_path%3D{schema}");
        Some(Db::Postgres { admin, schema, url })
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(d) => d.path().join("abm.db").display().to_string(),
            Db::Postgres { url, .. } => url.clone(),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Postgres { admin, schema, .. } = self {
            if let Ok(mut c) = postgres::Client::connect(admin, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// `name_sqlite` and `name_postgres` tests running `body(db)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:expr;)*) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn sqlite() {
                    ($body)(Db::sqlite());
                }
                #[test]
                #[ignore = "needs PostgreSQL: set ABM_TEST_PG_URL (run by .ci/run)"]
                fn postgres() {
                    if let Some(db) = Db::postgres(stringify!($name)) {
                        ($body)(db);
                    }
                }
            }
        )*
    };
}

/// A working directory with input files and a database.
pub struct World {
    pub db: Db,
    pub dir: tempfile::TempDir,
}

pub const ACCOUNTS_HEADER: &str = "account_id,name,industry,employees,icp_score,icp_tier\n";

/// An accounts row with an input tier and a score consistent with it.
pub fn account(id: &str, tier: &str) -> String {
    let score = match tier {
        "A" => 90,
        "B" => 70,
        "C" => 55,
        "D" => 40,
        _ => 10,
    };
    format!("{id},{id} Corp,software,500,{score},{tier}\n")
}

impl World {
    pub fn new(db: Db) -> World {
        World {
            db,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn abm(&self) -> std::process::Command {
        let mut c = abm();
        c.current_dir(self.dir.path())
            .env("ABM_DATABASE_URL", self.db.url())
            .env("USER", "tester")
            .arg("--quiet");
        c
    }

    /// Write `name` (e.g. `engagement.csv`) under the input directory `set`, with `header`.
    pub fn file(&self, set: &str, name: &str, header: &str, rows: &[&str]) {
        let d = self.dir.path().join(set);
        std::fs::create_dir_all(&d).unwrap();
        let mut text = header.to_string();
        for r in rows {
            text.push_str(r);
            if !r.ends_with('\n') {
                text.push('\n');
            }
        }
        std::fs::write(d.join(name), text).unwrap();
    }

    pub fn accounts(&self, set: &str, rows: &[(&str, &str)]) {
        let rows: Vec<String> = rows.iter().map(|(id, t)| account(id, t)).collect();
        let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
        self.file(set, "accounts.csv", ACCOUNTS_HEADER, &refs);
    }

    pub fn events(&self, set: &str, rows: &[&str]) {
        self.file(
            set,
            "engagement.csv",
            "account_id,occurred_at,type,contact_id\n",
            rows,
        );
    }

    pub fn import(&self, set: &str) -> String {
        let o = run_ok(self.abm().args(["import", set]));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn import_json(&self, set: &str) -> Value {
        let o = run_ok(self.abm().args(["import", "--json", set]));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `abm run --as-of T --json`.
    pub fn run(&self, as_of: &str) -> Value {
        let o = run_ok(self.abm().args(["run", "--json", "--as-of", as_of]));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let o = run_ok(self.abm().args(args).arg("--json"));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&o.stdout)))
    }

    pub fn pending(&self) -> Vec<Value> {
        self.json(&["review", "list"]).as_array().unwrap().clone()
    }

    pub fn history(&self, id: &str) -> Value {
        self.json(&["history", id])
    }

    /// The account's latest snapshot.
    pub fn latest(&self, id: &str) -> Value {
        let h = self.history(id);
        h["snapshots"].as_array().unwrap().last().unwrap().clone()
    }

    pub fn approve(&self, id: i64) -> Value {
        self.json(&[
            "review",
            "approve",
            &id.to_string(),
            "--comment",
            "looks right",
        ])
    }

    pub fn reject(&self, id: i64) -> Value {
        self.json(&["review", "reject", &id.to_string(), "--comment", "not yet"])
    }

    /// Run abm expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.abm().args(args).output().unwrap();
        assert!(
            !o.status.success(),
            "{args:?} should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

impl World {
    /// Run SQL statements on the database directly (what an older abm left behind, a test's
    /// tampering).
    pub fn sql(&self, stmts: &str) {
        match &self.db {
            Db::Sqlite(d) => rusqlite::Connection::open(d.path().join("abm.db"))
                .unwrap()
                .execute_batch(stmts)
                .unwrap(),
            Db::Postgres { admin, schema, .. } => {
                let mut c = postgres::Client::connect(admin, postgres::NoTls).unwrap();
                c.batch_execute(&format!("SET search_path TO {schema}; {stmts}"))
                    .unwrap()
            }
        }
    }

    /// `abm export` into `dir` (under the work directory); the three files' bytes.
    pub fn export(&self, dir: &str) -> [String; 3] {
        let out = self.dir.path().join(dir);
        run_ok(self.abm().args(["export", "--out"]).arg(&out));
        [
            "cluster_assignments.csv",
            "cluster_assignments.jsonl",
            "cluster_summary.json",
        ]
        .map(|f| std::fs::read_to_string(out.join(f)).unwrap())
    }
}

/// The export row of one account, from the exported JSON Lines.
pub fn export_row(jsonl: &str, id: &str) -> Value {
    jsonl
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["account_id"] == id)
        .unwrap_or_else(|| panic!("no row for {id} in\n{jsonl}"))
}

/// (cluster, movement) of a snapshot.
pub fn cm(s: &Value) -> (String, String) {
    (
        s["cluster"].as_str().unwrap().to_string(),
        s["movement"].as_str().unwrap().to_string(),
    )
}

pub fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}
