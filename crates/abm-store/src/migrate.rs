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
                after(&mut *tx, name)?;
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

/// Steps in Rust that run right after a migration's SQL, inside its transaction (what SQL alone
/// cannot do). A step is part of its migration: never edited once released either.
fn after(conn: &mut dyn Conn, name: &str) -> Result<(), StoreError> {
    match name {
        "0003_stable_signatures" => stable_signatures(conn),
        "0011_run_transitions" => crate::transitions::record_recorded_runs(conn),
        _ => Ok(()),
    }
}

/// 0003: rebuild every proposal's and conflict's signature from codes, ids and instants (they
/// were the rule's text plus the evidence's wording). Each is rebuilt from the checkpoint's stored
/// rule text and evidence, whose wording the old code wrote (`abm_core::movement::legacy`), so a
/// rejected proposal stays rejected: the next run signs the same evidence the same way. A
/// signature that cannot be rebuilt is an error naming the checkpoint (nothing is changed).
pub(crate) fn stable_signatures(conn: &mut dyn Conn) -> Result<(), StoreError> {
    use abm_core::movement::{legacy, CheckpointKind, Evidence};
    let rows = conn.query_all(
        "SELECT id, kind, rule, evidence FROM checkpoints WHERE signature IS NOT NULL ORDER BY id",
        &[],
        |r| Ok((r.i(0)?, r.string(1)?, r.opt_string(2)?, r.string(3)?)),
    )?;
    for (id, kind, rule, evidence) in rows {
        let k = crate::query::parse_code(CheckpointKind::parse, "checkpoints", "kind", &kind)?;
        let ev: Vec<Evidence> = serde_json::from_str(&evidence).map_err(|e| {
            StoreError::Corrupt(format!(
                "checkpoints.evidence of checkpoint {id} is not evidence JSON ({e}): {evidence:?}"
            ))
        })?;
        let sig = match k {
            CheckpointKind::Conflict => legacy::conflict_signature(&ev),
            CheckpointKind::Capacity => continue,
            _ => legacy::proposal_signature(rule.as_deref().unwrap_or_default(), &ev),
        };
        let Some(sig) = sig else {
            return Err(StoreError::Corrupt(format!(
                "checkpoints.signature of checkpoint {id} ({kind}) cannot be rebuilt from its rule \
                 {rule:?} and evidence {evidence:?}: not a text abm wrote"
            )));
        };
        conn.execute(
            "UPDATE checkpoints SET signature = ? WHERE id = ?",
            &[Value::Text(&sig), Value::Int(id)],
        )?;
    }
    Ok(())
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
            "4a119cf1ae41de37823a2edaa07138811452c64687d8eee541ea4e0f9d58fcec",
            "0fb5cacf849c5baa76e349b09e04d373c4f92bce5c64bee50018702963b7ba66",
            "653bcd226f0ac0aa9512f3b36eb8e94fd859c690cce5650aec65b417c6b7deea",
            "afee2f90701d6e9b77f9b02228435518bbe4d5ce96f51868cbda7c59e6a3898c",
            "2e00df04d6a647ec69837d88c7cdbbe2734364cc8e1b93dd445cd4f003211dc3",
            "112fdd86cbb8c9882a02b9a09cbdc6db096a46c6b9eec58bf54dfd19301bc9c4",
            "3850ad324d4b5e493e06885a842a9fac9db6983e36e8027c6f268b698a1dffa3",
            "e5760153e739e0a348f10fcbda796d497812d3b912c566d75049abc142d10833",
            "219f2b3f4d39bebe4a77c8e7b0b0f0ae64d43794c48a3b1ac16333c4ea3b8f0f",
            "d063607e0a78ab6fcd1ccfe6b61d4b30114d33d48032110bc20bb2246e68f5fb",
            "c4df000f95e3133e2a1386f8d8e3566e99817c7e3bc6d7e79bbc0880944aba84",
            "98d9c54fb3648884ab8e195bfe51612390ad2809915a17b643cbaff0e9f168ad",
            "b5c4c3a7354cf58de888872006eb6143969899d8be328e4b6e4e2c776d777c82",
        ];
        let frozen_pg = [
            "b29ae179d3e86ff32b43ccabba41c858fd24ae4c075932e574f1f803e623feda",
            "551bb3985c22dff75ede5130fe49f92f0f5f8a0d998cfa7fce1d796ce748992f",
            "b34d748f2e8e8af946aa6a9d662039eddcecb580799c79a5bfcc911c28292a5e",
            "46c7540b2afec6018e56b0cac240cc1f7ab139fb9b9be034401e90a427faa6a6",
            "62266d3184efb3246c3263260706c05dcfc46072c594e971d0594874655e5b5f",
            "b8b6a009bb19293895765f13eefd3510696af9f7178968d617c0be2e6fa916c5",
            "2e00df04d6a647ec69837d88c7cdbbe2734364cc8e1b93dd445cd4f003211dc3",
            "46572d8293806670f2db4c32e60a702ebb95fe05c595794567c2bc60a6dfc0f1",
            "3850ad324d4b5e493e06885a842a9fac9db6983e36e8027c6f268b698a1dffa3",
            "937215910e39bb9721823d73bb28f3a75cbd3df0ec321a26f86e2b37e0a7bcc2",
            "dec08c8724727a87019d9967673301d1197050e4f1cfee3802b7d066db73cd99",
            "3446aa1a5073006ee81e6cf4e32cb1560b6fae351be3012aad8a5d61ad98e993",
            "c4df000f95e3133e2a1386f8d8e3566e99817c7e3bc6d7e79bbc0880944aba84",
            "c0ef259d9585706f1725c2aae1a0dabf13ec46694fdc43f0b48de797e7845ea2",
            "b5c4c3a7354cf58de888872006eb6143969899d8be328e4b6e4e2c776d777c82",
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
