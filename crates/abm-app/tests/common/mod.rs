//! What the application-layer tests share: a store on SQLite, or on PostgreSQL in a schema of
//! its own (dropped afterwards, even when the test fails), and an `App` over it with the
//! default config.

#![allow(dead_code)] // each test file uses its own part

use abm_app::{App, StoreSettings};
use abm_core::Config;

pub fn on_sqlite(_name: &str, f: fn(&str)) {
    let dir = tempfile::tempdir().unwrap();
    f(&dir.path().join("abm.db").display().to_string());
}

pub fn on_postgres(name: &str, f: fn(&str)) {
    abm_store::testing::in_pg_schema(&format!("app_{name}"), f);
}

/// Two stores side by side.
pub fn on_sqlite_pair(_name: &str, f: &dyn Fn(&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let db = |n: &str| dir.path().join(n).display().to_string();
    f(&db("a.db"), &db("b.db"));
}

pub fn on_postgres_pair(name: &str, f: &dyn Fn(&str, &str)) {
    use abm_store::testing::in_pg_schema;
    in_pg_schema(&format!("app_{name}_a"), |a| {
        in_pg_schema(&format!("app_{name}_b"), |b| f(a, b))
    });
}

pub fn app(url: &str) -> App {
    App::open(&StoreSettings::new(url), Config::default()).unwrap()
}
