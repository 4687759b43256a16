//! Test support, for this crate's tests and those of the crates above it (no test code of its
//! own runs in production: nothing here is called outside tests).

/// Run `f` with a store URL inside a PostgreSQL schema of its own (`t_{name}_{pid}`) on the
/// server of `ABM_TEST_PG_URL`, dropped afterwards whether `f` returns or panics (the panic
/// then goes on). Panics, naming the URL, when the variable is unset or the server does not
/// answer: callers are `#[ignore = "needs PostgreSQL …"]` tests.
pub fn in_pg_schema<R>(name: &str, f: impl FnOnce(&str) -> R) -> R {
    let admin = std::env::var("ABM_TEST_PG_URL").expect("ABM_TEST_PG_URL is not set");
    let schema = format!("t_{name}_{}", std::process::id()).to_lowercase();
    let mut c = ::postgres::Client::connect(&admin, ::postgres::NoTls)
        .unwrap_or_else(|e| panic!("ABM_TEST_PG_URL={admin}: {e}"));
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .unwrap();
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options=-csearch_path%3D{schema}");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&url)));
    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    match result {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e),
    }
}
