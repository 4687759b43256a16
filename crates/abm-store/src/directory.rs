//! What the connectors read about stored accounts: each account's id, name, web domain and
//! fields (news matching by domain and by name; enrichment fills the fields it lacks).

use crate::db::{ConnExt, RowExt};
use crate::{Store, StoreError};
use serde::Serialize;

/// One stored account as the connectors see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountEntry {
    pub account_id: String,
    pub name: String,
    /// The `domain` field as imported (or `website`), when there is one.
    pub domain: Option<String>,
    /// Every field as imported (column → value).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl Store {
    /// Every stored account's id, name and domain, in `account_id` order.
    pub fn account_directory(&mut self) -> Result<Vec<AccountEntry>, StoreError> {
        let order = self.conn().bytewise();
        self.conn().query_all(
            &format!("SELECT account_id, name, fields FROM accounts ORDER BY account_id {order}"),
            &[],
            |r| {
                let fields: serde_json::Value =
                    serde_json::from_str(r.s(2)?).unwrap_or(serde_json::Value::Null);
                let pick = |key: &str| {
                    fields.as_object().and_then(|o| {
                        o.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(key))
                            .and_then(|(_, v)| v.as_str())
                            .map(str::trim)
                            .filter(|v| !v.is_empty())
                            .map(str::to_string)
                    })
                };
                Ok(AccountEntry {
                    account_id: r.string(0)?,
                    name: r.string(1)?,
                    domain: pick("domain").or_else(|| pick("website")),
                    fields: match fields {
                        serde_json::Value::Object(m) => m,
                        _ => serde_json::Map::new(),
                    },
                })
            },
        )
    }
}
