//! The migration runner: numbered SQL files per backend, applied in order inside one write
//! transaction, each recorded with its checksum. An applied migration whose text changed is an
//! error: migrations are never edited once released (add a new one instead).

use crate::db::{Conn, ConnExt, RowExt, TxMode, Value};
use crate::{StoreError, Tx};

pub(crate) fn checksum(sql: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

type Applied = Vec<(i64, String, String)>;

fn applied(conn: &mut dyn Conn) -> Result<Applied, StoreError> {
    conn.query_all(
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
        &[],
        |r| Ok((r.i(0)?, r.string(1)?, r.string(2)?)),
    )
}

/// Whether `applied` is exactly `list` (then nothing needs the write lock).
fn up_to_date(applied: &Applied, list: &[(&str, &str)]) -> bool {
    applied.len() == list.len()
        && applied
            .iter()
            .zip(list)
            .enumerate()
            .all(|(i, (a, (_, sql)))| a.0 == i as i64 + 1 && a.2 == checksum(sql))
}

pub(crate) fn migrate(conn: &mut dyn Conn, list: &[(&str, &str)]) -> Result<(), StoreError> {
    // Fast path without the write lock, so readers never wait for a running writer.
    if let Ok(a) = applied(conn) {
        if up_to_date(&a, list) {
            return Ok(());
        }
    }
    let mut tx = Tx::begin(conn, TxMode::Write)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT NOT NULL,
            checksum   TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )",
    )?;
    let applied = applied(&mut *tx)?;
    if let Some((v, ..)) = applied.last() {
        if *v > list.len() as i64 {
            return Err(StoreError::SchemaTooNew {
                found: *v,
                known: list.len() as i64,
            });
        }
    }
    for (i, (name, sql)) in list.iter().enumerate() {
        let version = i as i64 + 1;
        let sum = checksum(sql);
        match applied.iter().find(|a| a.0 == version) {
            Some((_, _, recorded)) if *recorded == sum => continue,
            Some(_) => {
                return Err(StoreError::MigrationEdited {
                    version,
                    name: name.to_string(),
                })
            }
            None => {
                tx.batch_execute(sql)?;
                let now = crate::wall_clock().to_string();
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                    &[
                        Value::Int(version),
                        Value::Text(name),
                        Value::Text(&sum),
                        Value::Text(&now),
                    ],
                )?;
            }
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Released migrations are frozen: if this fails, you edited one. Add a new migration
    /// instead, and append its checksum here.
    #[test]
    fn released_migrations_are_never_edited() {
        let frozen_sqlite = [
            "059c75a134e25c2f844b4ff0e6a8f0a4cc543370cbc9714b405ddeb751dc8820",
            "7d76b0a1c49e70de2398e2c39182468ce0d5546fbde747ce2f5b18e3b402f8c5",
            "653bcd226f0ac0aa9512f3b36eb8e94fd859c690cce5650aec65b417c6b7deea",
        ];
        let frozen_pg = [
            "b29ae179d3e86ff32b43ccabba41c858fd24ae4c075932e574f1f803e623feda",
            "551bb3985c22dff75ede5130fe49f92f0f5f8a0d998cfa7fce1d796ce748992f",
            "62266d3184efb3246c3263260706c05dcfc46072c594e971d0594874655e5b5f",
        ];
        for (list, frozen) in [
            (crate::sqlite::MIGRATIONS, &frozen_sqlite),
            (crate::postgres::MIGRATIONS, &frozen_pg),
        ] {
            for (i, sum) in frozen.iter().enumerate() {
                assert_eq!(
                    &checksum(list[i].1),
                    sum,
                    "migration {} was edited",
                    list[i].0
                );
            }
            assert_eq!(
                list.len(),
                frozen.len(),
                "freeze the new migration's checksum here"
            );
        }
    }

    #[test]
    fn migrations_run_once_and_detect_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let url = path.to_str().unwrap();
        let latest = crate::sqlite::MIGRATIONS.len() as i64;
        let mut s = crate::Store::open(url).unwrap();
        assert_eq!(s.schema_version().unwrap(), latest);
        drop(s);
        s = crate::Store::open(url).unwrap();
        assert_eq!(s.schema_version().unwrap(), latest);
        s.conn()
            .execute("UPDATE schema_migrations SET checksum = 'x'", &[])
            .unwrap();
        drop(s);
        let err = crate::Store::open(url).err().unwrap().to_string();
        assert!(err.contains("never be edited"), "{err}");
    }
}
