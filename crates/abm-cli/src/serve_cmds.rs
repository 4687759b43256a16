//! `abm serve` (the JSON API) and `abm token` (its bearer tokens).

use crate::load_config;
use crate::state_cmds::{open_pooled, open_with, DbArgs};
use abm_app::access::Role;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::Path;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; another address exposes the API (bearer
    /// tokens travel in clear text: put TLS in front).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    listen: String,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct McpArgs {
    /// The name review decisions are recorded under (default: $ABM_REVIEWER, else "mcp").
    #[arg(long, env = "ABM_REVIEWER", default_value = "mcp", value_name = "NAME")]
    reviewer: String,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once, as the last line of stdout.
    Create {
        /// viewer (reads), reviewer (also approves and rejects) or admin (also runs and ingests).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The token's name: the reviewer recorded on its decisions.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the tokens (names, roles, dates; never the secrets).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke the live token NAME: it never authenticates again.
    Revoke {
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?}: one of viewer, reviewer, admin"))
}

/// Print `secret` as the last line of stdout, flushed (never logged).
fn print_secret(secret: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{secret}")?;
    out.flush()?;
    Ok(())
}

pub fn token(cmd: TokenCommand, config: Option<&Path>) -> Result<()> {
    match cmd {
        TokenCommand::Create { role, name, db } => {
            let app = open_with(&db, true, load_config(config)?)?;
            let secret = app.token_create(&name, role)?;
            outln!("token {name:?} ({role}) created; it is shown once, on the next line:")?;
            print_secret(&secret)?;
        }
        TokenCommand::List { json, db } => {
            let app = open_with(&db, false, load_config(config)?)?;
            let list = app.token_list()?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else if list.is_empty() {
                outln!("no tokens (`abm token create --role admin --name NAME`)")?;
            } else {
                for t in list {
                    let state = t
                        .revoked_at
                        .map(|r| format!("revoked {r}"))
                        .unwrap_or_else(|| "live".into());
                    outln!(
                        "{:<24} {:<9} created {}  {state}",
                        t.name,
                        t.role.as_str(),
                        t.created_at
                    )?;
                }
            }
        }
        TokenCommand::Revoke { name, db } => {
            let app = open_with(&db, false, load_config(config)?)?;
            app.token_revoke(&name)?;
            outln!("token {name:?} revoked")?;
        }
    }
    Ok(())
}

pub fn serve(args: ServeArgs, config: Option<&Path>) -> Result<()> {
    // As many idle connections as blocking threads: no connection opened per request.
    let store_calls = abm_server::store_calls(args.db.url());
    let app = open_pooled(&args.db, true, load_config(config)?, store_calls)?;
    abm_server::init_logging();
    if let Some(secret) = app.token_create_first(abm_server::FIRST_TOKEN_NAME)? {
        outln!(
            "no API token existed: created the admin token {:?}; it is shown once, on the next line:",
            abm_server::FIRST_TOKEN_NAME
        )?;
        print_secret(&secret)?;
    }
    let connectors = connectors(app.config());
    let rt = tokio_runtime(store_calls)?;
    // The store's last handle is dropped here, outside the runtime: a PostgreSQL client owns a
    // runtime of its own, which must not be dropped from async code.
    let keep = app.clone();
    let served = rt.block_on(async move {
        let listener = abm_server::bind(&args.listen).await?;
        let addr = listener.local_addr().context("the listening address")?;
        if !abm_server::is_loopback(&addr) {
            eprintln!(
                "abm: warning: listening on {addr}, not loopback: tokens travel in clear text unless TLS is in front"
            );
        }
        eprintln!(
            "abm: serving {} on http://{addr} (Ctrl-C or SIGTERM stops)",
            app.location().display()
        );
        abm_server::serve(listener, app, connectors, abm_server::shutdown_signal()).await?;
        eprintln!("abm: stopped");
        Ok::<_, anyhow::Error>(())
    });
    drop(rt);
    drop(keep);
    served
}

/// A non-empty environment variable, trimmed.
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The MCP connector tools' settings: `[enrich]` with the token its `token_env` names, and
/// HubSpot from `HUBSPOT_TOKEN` (and `ABM_HUBSPOT_URL`, default HubSpot's API).
fn connectors(config: &abm_core::Config) -> abm_mcp::Connectors {
    let hubspot = env_var("HUBSPOT_TOKEN").map(|token| abm_mcp::HubSpotAccess {
        base_url: env_var("ABM_HUBSPOT_URL")
            .unwrap_or_else(|| abm_mcp::connector_tools::HUBSPOT_URL.to_string()),
        token,
    });
    let enrich_token = env_var(&config.enrich.token_env).unwrap_or_default();
    abm_mcp::Connectors::new(config, enrich_token, hubspot)
}

fn tokio_runtime(store_calls: usize) -> Result<abm_server::Runtime> {
    match abm_server::runtime(store_calls) {
        Ok(rt) => Ok(rt),
        Err(e) => bail!("cannot start the server's runtime: {e}"),
    }
}

pub fn mcp(args: McpArgs, config: Option<&Path>) -> Result<()> {
    let app = open_with(&args.db, true, load_config(config)?)?;
    let connectors = connectors(app.config());
    abm_mcp::serve_stdio(app, args.reviewer, connectors)?;
    Ok(())
}
