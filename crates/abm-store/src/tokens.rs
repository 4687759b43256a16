//! The API's bearer tokens (`abm token …`, `abm serve`): a token is a random secret shown once;
//! the store keeps only its SHA-256, its name and its role. A revoked token keeps its row (the
//! decisions it signed name it) and never authenticates again; a name is unique among live
//! tokens.

use crate::db::{ConnExt, RowExt, TxMode, Value};
use crate::{StoreError, Tx};
use serde::{Deserialize, Serialize};

/// What a token may do. Ordered: each role may do what the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Also approves and rejects checkpoints.
    Reviewer,
    /// Also runs, and imports accounts, events, triggers and deals.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "reviewer" => Some(Role::Reviewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a presented token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// What every secret starts with (so a leaked one is recognisable in a scan).
pub const TOKEN_PREFIX: &str = "abm_";

/// The SHA-256 of a secret (the key of the pool's memo of live tokens).
pub(crate) fn digest(secret: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes()).into()
}

fn hash(secret: &str) -> String {
    digest(secret).iter().map(|b| format!("{b:02x}")).collect()
}

fn new_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| StoreError::Corrupt(format!("no randomness for a token: {e}")))?;
    let mut s = String::with_capacity(TOKEN_PREFIX.len() + 64);
    s.push_str(TOKEN_PREFIX);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    Ok(s)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

impl crate::Store {
    /// A new token named `name` with `role`; its secret, which is never stored nor shown again.
    pub fn token_create(&mut self, name: &str, role: Role) -> Result<String, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        let secret = create(&mut tx, name, role)?;
        tx.commit()?;
        Ok(secret)
    }

    /// When no live token exists, a new admin token named `name` (its secret); else `None`.
    /// One transaction: two servers starting at once create one token.
    pub fn token_create_first(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        let live = tx.scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM api_tokens WHERE revoked_at IS NULL",
            &[],
        )?;
        if live > 0 {
            return Ok(None);
        }
        let secret = create(&mut tx, name, Role::Admin)?;
        tx.commit()?;
        Ok(Some(secret))
    }

    /// Every token, live ones first, then by name.
    pub fn token_list(&mut self) -> Result<Vec<TokenInfo>, StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Read)?;
        let v = tx.query_all(
            "SELECT name, role, created_at, revoked_at FROM api_tokens
             ORDER BY CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END, name, id",
            &[],
            |r| {
                Ok(TokenInfo {
                    name: r.string(0)?,
                    role: Role::parse(r.s(1)?)
                        .ok_or_else(|| StoreError::Corrupt(format!("token role {:?}", r.s(1))))?,
                    created_at: r.string(2)?,
                    revoked_at: r.opt_string(3)?,
                })
            },
        )?;
        tx.commit()?;
        Ok(v)
    }

    /// Revoke the live token named `name`: it never authenticates again.
    pub fn token_revoke(&mut self, name: &str) -> Result<(), StoreError> {
        let mut tx = Tx::begin(self.conn(), TxMode::Write)?;
        let now = crate::wall_clock().to_string();
        let n = tx.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            &[Value::Text(&now), Value::Text(name)],
        )?;
        if n == 0 {
            return Err(StoreError::NoToken(name.to_string()));
        }
        tx.commit()
    }

    /// The live token whose secret is `secret`, if any.
    pub fn token_authenticate(&mut self, secret: &str) -> Result<Option<Caller>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let h = hash(secret);
        self.conn().query_one(
            "SELECT name, role FROM api_tokens WHERE hash = ? AND revoked_at IS NULL",
            &[Value::Text(&h)],
            |r| {
                Ok(Caller {
                    name: r.string(0)?,
                    role: Role::parse(r.s(1)?)
                        .ok_or_else(|| StoreError::Corrupt(format!("token role {:?}", r.s(1))))?,
                })
            },
        )
    }
}

fn create(tx: &mut Tx<'_>, name: &str, role: Role) -> Result<String, StoreError> {
    if !valid_name(name) {
        return Err(StoreError::TokenName(name.to_string()));
    }
    let taken = tx.scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM api_tokens WHERE name = ? AND revoked_at IS NULL",
        &[Value::Text(name)],
    )?;
    if taken > 0 {
        return Err(StoreError::TokenExists(name.to_string()));
    }
    let secret = new_secret()?;
    let now = crate::wall_clock().to_string();
    tx.execute(
        "INSERT INTO api_tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)",
        &[
            Value::Text(name),
            Value::Text(role.as_str()),
            Value::Text(&hash(&secret)),
            Value::Text(&now),
        ],
    )?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_until_revoked_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let mut s = crate::Store::open(&url).unwrap();
        let first = s
            .token_create_first("admin")
            .unwrap()
            .expect("no token yet");
        assert!(s.token_create_first("admin2").unwrap().is_none());
        let v = s.token_create("ann", Role::Viewer).unwrap();
        assert!(v.starts_with(TOKEN_PREFIX) && v.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(v, first);
        assert!(matches!(
            s.token_create("ann", Role::Admin),
            Err(StoreError::TokenExists(_))
        ));
        assert_eq!(
            s.token_authenticate(&v).unwrap(),
            Some(Caller {
                name: "ann".into(),
                role: Role::Viewer
            })
        );
        assert_eq!(s.token_authenticate("abm_00").unwrap(), None);
        assert_eq!(s.token_authenticate(&v[..v.len() - 1]).unwrap(), None);
        // Only the hash is stored.
        let stored: i64 = s
            .conn()
            .scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM api_tokens WHERE hash = ? OR name = ?",
                &[Value::Text(&v), Value::Text(&v)],
            )
            .unwrap();
        assert_eq!(stored, 0);
        s.token_revoke("ann").unwrap();
        assert_eq!(s.token_authenticate(&v).unwrap(), None);
        assert!(matches!(s.token_revoke("ann"), Err(StoreError::NoToken(_))));
        // The name is free again; the old secret stays dead.
        let v2 = s.token_create("ann", Role::Reviewer).unwrap();
        assert_eq!(
            s.token_authenticate(&v2).unwrap().unwrap().role,
            Role::Reviewer
        );
        assert_eq!(s.token_authenticate(&v).unwrap(), None);
        let list = s.token_list().unwrap();
        assert_eq!(list.len(), 3);
        assert!(list[2].revoked_at.is_some());
        assert!(Role::Viewer < Role::Reviewer && Role::Reviewer < Role::Admin);
        assert!(s.token_create("bad name", Role::Viewer).is_err());
    }
}
