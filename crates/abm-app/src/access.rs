//! Who may call the API: bearer tokens with a role (viewer < reviewer < admin), stored hashed.

use crate::{App, Result};
pub use abm_store::tokens::{Caller, Role, TokenInfo};

impl App {
    /// A new token; its secret is returned once and never stored.
    pub fn token_create(&self, name: &str, role: Role) -> Result<String> {
        Ok(self.store()?.token_create(name, role)?)
    }

    /// When no live token exists, a new admin token named `name` (its secret).
    pub fn token_create_first(&self, name: &str) -> Result<Option<String>> {
        Ok(self.store()?.token_create_first(name)?)
    }

    pub fn token_list(&self) -> Result<Vec<TokenInfo>> {
        Ok(self.store()?.token_list()?)
    }

    pub fn token_revoke(&self, name: &str) -> Result<()> {
        Ok(self.store()?.token_revoke(name)?)
    }

    /// The live token a request presents, if any.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Caller>> {
        Ok(self.pool.authenticate(secret)?)
    }

    /// The caller of a token [`App::authenticate`] found live when nothing was committed to
    /// the store since (SQLite; `None`: check it). Cheap enough for an async task: one
    /// `PRAGMA data_version`, no query.
    pub fn known_caller(&self, secret: &str) -> Option<Caller> {
        self.pool.known_caller(secret)
    }
}
