//! What the application-layer tests share: a store on SQLite, or on PostgreSQL in a schema of
//! its own (dropped afterwards, even when the test fails), and an `App` over it with the
//! default config.

#![allow(dead_code)] // each test file uses its own part

use abm_app::{App, StoreSettings};
use abm_core::Config;

/// A PostgreSQL schema of this process's own, and a store URL that works in it.
pub struct PgSchema {
    admin: postgres::Client,
    schema: String,
    pub url: String,
}

impl PgSchema {
    pub fn new(name: &str) -> PgSchema {
        let admin = std::env::var("ABM_TEST_PG_URL").expect("ABM_TEST_PG_URL is not set");
        let schema = format!("t_app_{name}_{}", std::process::id());
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-csearch_path%3D{schema}");
        PgSchema {
            admin: c,
            schema,
            url,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}

pub fn on_sqlite(_name: &str, f: fn(&str)) {
    let dir = tempfile::tempdir().unwrap();
    f(&dir.path().join("abm.db").display().to_string());
}

pub fn on_postgres(name: &str, f: fn(&str)) {
    let s = PgSchema::new(name);
    f(&s.url);
}

/// Two stores side by side.
pub fn on_sqlite_pair(_name: &str, f: &dyn Fn(&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let db = |n: &str| dir.path().join(n).display().to_string();
    f(&db("a.db"), &db("b.db"));
}

pub fn on_postgres_pair(name: &str, f: &dyn Fn(&str, &str)) {
    let (a, b) = (
        PgSchema::new(&format!("{name}_a")),
        PgSchema::new(&format!("{name}_b")),
    );
    f(&a.url, &b.url);
}

pub fn app(url: &str) -> App {
    App::open(&StoreSettings::new(url), Config::default()).unwrap()
}
