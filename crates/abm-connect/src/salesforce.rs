//! Salesforce (REST API): `abm sync salesforce`.
//!
//! 1. **Pull** with SOQL `query` and its `nextRecordsUrl` pages: Account (modified since the
//!    watermark or `--since`), Opportunity, Task and Event with an `AccountId`, into the same
//!    records as a file import ([`App::import_records`]).
//! 2. **Run** ([`App::run`]).
//! 3. **Write-back through the outbox**: `ABM_Cluster__c`, `ABM_Tier__c`, `ABM_ICP_Score__c`,
//!    `ABM_Next_Action__c` (and `ABM_Segment__c` when the run recorded `[[segments]]`) on every Account of the latest run whose values changed since the
//!    last write (custom fields to create first, see the README), with sObject Collections
//!    (`PATCH composite/sobjects`, ≤ 200 records, `allOrNone=false`): a record's error goes to
//!    the outbox with Salesforce's message, the others are sent. An update whose outcome is
//!    unknown is checked by reading the Accounts back (SOQL) before it is sent again.
//!
//! `REQUEST_LIMIT_EXCEEDED` (403) stops the sync like HubSpot's daily 429; 401 stops at once.

use crate::http::{Client, Failure, Method, Reply};
use crate::ConnectError;
use abm_app::records::{RecordBatch, RecordKind};
use abm_app::App;
use abm_core::Instant;
use abm_store::outbox::{NewOutboxItem, OutboxItem, OutboxMark};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const CRM: &str = "salesforce";
/// The REST API version used.
pub const API: &str = "/services/data/v60.0";
/// Records per sObject Collections request (Salesforce's maximum).
pub const COLLECTION_MAX: usize = 200;
pub const KIND_UPDATE: &str = "account_update";
/// The Account fields abm writes (custom fields to create).
pub const ABM_FIELDS: [&str; 4] = [
    "ABM_Cluster__c",
    "ABM_Tier__c",
    "ABM_ICP_Score__c",
    "ABM_Next_Action__c",
];
/// Written (and read back) only when the run recorded `[[segments]]`: the ones the Account is
/// in (`a;b`), a custom text field to create as well.
pub const ABM_SEGMENT_FIELD: &str = "ABM_Segment__c";

/// What `abm sync salesforce` does.
#[derive(Debug, Clone, Default)]
pub struct SfSyncOptions {
    pub since: Option<Instant>,
    pub dry_run: bool,
    pub as_of: Option<Instant>,
    pub deliver_only: bool,
}

/// What a Salesforce sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SfSyncReport {
    pub accounts: usize,
    pub activities: usize,
    pub opportunities: usize,
    pub imported: Option<abm_app::RecordsImported>,
    pub run_id: Option<i64>,
    pub updates_enqueued: u64,
    pub delivery: crate::hubspot::Delivery,
    pub requests: u64,
    pub watermark: Option<String>,
}

pub struct Salesforce {
    pub client: Client,
}

fn to_error(f: Failure, what: &str, attempts: u32) -> ConnectError {
    match f {
        Failure::Unauthorized { status, message } => ConnectError::Unauthorized {
            crm: "Salesforce",
            status,
            message,
        },
        Failure::DailyLimit { message } => ConnectError::DailyLimit {
            crm: "Salesforce",
            message,
        },
        Failure::Transient { reason, .. } => ConnectError::Unavailable {
            crm: "Salesforce",
            what: what.to_string(),
            attempts,
            reason,
        },
    }
}

/// Salesforce Account ids: 15 or 18 letters and digits, key prefix `001`.
pub fn is_account_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18)
        && id.starts_with("001")
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A SOQL datetime literal (whole seconds, floored: a `>=` filter reads a little more, never
/// less).
fn soql_datetime(t: Instant) -> String {
    // Instant's display is RFC 3339 UTC, without a fraction when there is none.
    Instant(t.0 - t.0.rem_euclid(1_000_000)).to_string()
}

/// A field as text for a record (numbers and booleans too); `None` when null or empty.
fn text(rec: &Value, field: &str) -> Option<String> {
    match rec.get(field)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Salesforce {
    pub fn new(client: Client) -> Salesforce {
        Salesforce { client }
    }

    fn read_ok(&mut self, path: &str, what: &str) -> Result<Value, ConnectError> {
        let max = self.client.settings().max_attempts;
        let r: Reply = self
            .client
            .request(Method::Get, path, None)
            .map_err(|f| to_error(f, what, max))?;
        if !r.is_success() {
            return Err(ConnectError::Api {
                crm: "Salesforce",
                what: what.to_string(),
                status: r.status,
                message: r.message(),
            });
        }
        Ok(r.body)
    }

    /// Every record of a SOQL query (`query`, then `nextRecordsUrl` until `done`).
    pub fn query(&mut self, soql: &str) -> Result<Vec<Value>, ConnectError> {
        let what = "a SOQL query";
        let mut out = Vec::new();
        let mut path = format!("{API}/query?q={}", encode(soql));
        loop {
            let page = self.read_ok(&path, what)?;
            let records = page
                .get("records")
                .and_then(Value::as_array)
                .ok_or_else(|| ConnectError::Protocol {
                    crm: "Salesforce",
                    what: what.into(),
                    reason: "no records array".into(),
                })?;
            out.extend(records.iter().cloned());
            let done = page.get("done").and_then(Value::as_bool).unwrap_or(true);
            match page.get("nextRecordsUrl").and_then(Value::as_str) {
                Some(next) if !done => path = next.to_string(),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Accounts (modified since `since`) as account records, and the latest
    /// `LastModifiedDate` seen.
    pub fn pull_accounts(
        &mut self,
        since: Option<Instant>,
    ) -> Result<(Vec<Value>, Option<String>), ConnectError> {
        let mut soql = "SELECT Id, Name, Website, Industry, NumberOfEmployees, AnnualRevenue, BillingCountry, LastModifiedDate FROM Account".to_string();
        if let Some(t) = since {
            soql.push_str(&format!(" WHERE LastModifiedDate >= {}", soql_datetime(t)));
        }
        soql.push_str(" ORDER BY LastModifiedDate");
        let mut latest: Option<(Instant, String)> = None;
        let mut out = Vec::new();
        for a in self.query(&soql)? {
            let Some(id) = text(&a, "Id") else { continue };
            if let Some(m) = text(&a, "LastModifiedDate") {
                if let Ok(t) = Instant::parse(&m) {
                    if latest.as_ref().is_none_or(|(l, _)| t > *l) {
                        latest = Some((t, m));
                    }
                }
            }
            let mut rec = Map::new();
            rec.insert("account_id".into(), json!(id));
            for (sf, ours) in [
                ("Name", "name"),
                ("Industry", "industry"),
                ("NumberOfEmployees", "employees"),
                ("AnnualRevenue", "annual_revenue"),
                ("BillingCountry", "country"),
            ] {
                if let Some(v) = text(&a, sf) {
                    rec.insert(ours.into(), json!(v));
                }
            }
            if let Some(w) = text(&a, "Website") {
                let d = w
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_start_matches("www.")
                    .trim_end_matches('/')
                    .to_string();
                rec.insert("domain".into(), json!(d));
            }
            out.push(Value::Object(rec));
        }
        Ok((out, latest.map(|l| l.1)))
    }

    /// Tasks and Events with an account, as engagement records.
    pub fn pull_activities(&mut self) -> Result<Vec<Value>, ConnectError> {
        let mut out = Vec::new();
        for (object, soql) in [
            ("Task", "SELECT Id, AccountId, WhoId, ActivityDate, CreatedDate, Type, TaskSubtype FROM Task WHERE AccountId != null"),
            ("Event", "SELECT Id, AccountId, WhoId, ActivityDateTime, CreatedDate, Type FROM Event WHERE AccountId != null"),
        ] {
            for t in self.query(soql)? {
                let (Some(id), Some(account)) = (text(&t, "Id"), text(&t, "AccountId")) else {
                    continue;
                };
                let when = text(&t, "ActivityDateTime")
                    .or_else(|| text(&t, "ActivityDate"))
                    .or_else(|| text(&t, "CreatedDate"));
                let ty = text(&t, "Type")
                    .or_else(|| text(&t, "TaskSubtype"))
                    .unwrap_or_else(|| if object == "Event" { "Meeting" } else { "Other" }.into());
                let mut rec = Map::new();
                rec.insert("account_id".into(), json!(account));
                rec.insert("occurred_at".into(), json!(when));
                rec.insert("type".into(), json!(ty));
                rec.insert("event_id".into(), json!(format!("salesforce:{id}")));
                if let Some(who) = text(&t, "WhoId") {
                    rec.insert("contact_id".into(), json!(who));
                }
                out.push(Value::Object(rec));
            }
        }
        Ok(out)
    }

    /// Opportunities with an account, as deal records.
    pub fn pull_opportunities(&mut self) -> Result<Vec<Value>, ConnectError> {
        let soql = "SELECT Id, AccountId, StageName, Amount, CreatedDate, CloseDate, IsClosed, IsWon, LastModifiedDate FROM Opportunity WHERE AccountId != null";
        let mut out = Vec::new();
        for o in self.query(soql)? {
            let (Some(id), Some(account)) = (text(&o, "Id"), text(&o, "AccountId")) else {
                continue;
            };
            let mut rec = Map::new();
            rec.insert("deal_id".into(), json!(id));
            rec.insert("account_id".into(), json!(account));
            for (sf, ours) in [
                ("StageName", "stage"),
                ("Amount", "amount"),
                ("CreatedDate", "created_at"),
                ("IsClosed", "is_closed"),
                ("IsWon", "is_won"),
                ("LastModifiedDate", "last_stage_change_at"),
            ] {
                if let Some(v) = text(&o, sf) {
                    rec.insert(ours.into(), json!(v));
                }
            }
            // CloseDate is the expected date while the opportunity is open.
            if text(&o, "IsClosed").as_deref() == Some("true") {
                if let Some(v) = text(&o, "CloseDate") {
                    rec.insert("closed_at".into(), json!(v));
                }
            }
            out.push(Value::Object(rec));
        }
        Ok(out)
    }

    /// Pull, import, run, enqueue, deliver.
    pub fn sync(
        &mut self,
        app: &App,
        opts: &SfSyncOptions,
        log: &dyn Fn(&str),
    ) -> Result<SfSyncReport, ConnectError> {
        let mut report = SfSyncReport::default();
        if !opts.deliver_only {
            let since = match opts.since {
                Some(t) => Some(t),
                None => match app.store()?.watermark(CRM, "accounts")? {
                    Some(w) => Some(Instant::parse(&w).map_err(|e| {
                        ConnectError::Invalid(format!("stored watermark {w:?}: {e}"))
                    })?),
                    None => None,
                },
            };
            let (accounts, watermark) = self.pull_accounts(since)?;
            let activities = self.pull_activities()?;
            let opportunities = self.pull_opportunities()?;
            report.accounts = accounts.len();
            report.activities = activities.len();
            report.opportunities = opportunities.len();
            report.watermark = watermark.clone();
            log(&format!(
                "pulled {} accounts, {} tasks and events, {} opportunities",
                accounts.len(),
                activities.len(),
                opportunities.len()
            ));
            if opts.dry_run {
                report.requests = self.client.requests;
                return Ok(report);
            }
            let batches = [
                RecordBatch::new(RecordKind::Accounts, "salesforce:accounts", accounts),
                RecordBatch::new(RecordKind::Engagement, "salesforce:activities", activities),
                RecordBatch::new(RecordKind::Deals, "salesforce:opportunities", opportunities),
            ];
            report.imported = Some(app.import_records(&batches)?);
            if let Some(w) = &watermark {
                app.store()?.set_watermark(CRM, "accounts", w)?;
            }
            report.run_id = match app.run(opts.as_of, None, abm_app::RunObserver::default()) {
                Ok(abm_store::RunOutcome::Done(r)) => Some(r.run_id),
                Ok(abm_store::RunOutcome::Unchanged { run, .. }) => Some(run),
                Err(abm_app::AppError::Store(abm_store::StoreError::NoAccounts)) => None,
                Err(e) => return Err(e.into()),
            };
            report.updates_enqueued = enqueue(app)?;
        } else if opts.dry_run {
            return Ok(report);
        }
        let mut after = 0;
        let result = loop {
            let items = app
                .store()?
                .outbox_due(CRM, KIND_UPDATE, after, COLLECTION_MAX)?;
            let Some(last) = items.last() else {
                break Ok(());
            };
            after = last.id;
            if let Err(e) = self.deliver(app, items, &mut report.delivery) {
                break Err(e);
            }
        };
        report.requests = self.client.requests;
        result?;
        log(&format!(
            "delivered {} updates ({} found already applied), {} refused, {} left",
            report.delivery.sent,
            report.delivery.confirmed,
            report.delivery.dead,
            report.delivery.left
        ));
        Ok(report)
    }

    /// One collection of updates (≤ 200), retried within this sync.
    fn deliver(
        &mut self,
        app: &App,
        todo: Vec<OutboxItem>,
        d: &mut crate::hubspot::Delivery,
    ) -> Result<(), ConnectError> {
        crate::deliver_batch(self, app, todo, d)
    }

    /// Of `items`, those whose values Salesforce already shows.
    fn applied_updates(&mut self, items: &[&OutboxItem]) -> Result<Vec<i64>, ConnectError> {
        let ids: Vec<String> = items
            .iter()
            .filter(|i| is_account_id(&i.target))
            .map(|i| format!("'{}'", i.target))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wants: Vec<Value> = items
            .iter()
            .map(|i| serde_json::from_str(&i.payload).unwrap_or(Value::Null))
            .collect();
        let mut fields: Vec<&str> = ABM_FIELDS.to_vec();
        if wants.iter().any(|w| w.get(ABM_SEGMENT_FIELD).is_some()) {
            fields.push(ABM_SEGMENT_FIELD);
        }
        let soql = format!(
            "SELECT Id, {} FROM Account WHERE Id IN ({})",
            fields.join(", "),
            ids.join(",")
        );
        let rows = self.query(&soql)?;
        let by_id: HashMap<String, &Value> = rows
            .iter()
            .filter_map(|r| Some((text(r, "Id")?, r)))
            .collect();
        Ok(items
            .iter()
            .zip(&wants)
            .filter(|(i, want)| {
                let Some(row) = by_id.get(&i.target) else {
                    return false;
                };
                let segment = want.get(ABM_SEGMENT_FIELD);
                ABM_FIELDS.iter().all(|f| same(row.get(*f), want.get(*f)))
                    && (segment.is_none() || same(row.get(ABM_SEGMENT_FIELD), segment))
            })
            .map(|(i, _)| i.id)
            .collect())
    }
}

/// Account updates with sObject Collections (`allOrNone=false`: per-record results), read back
/// by SOQL when an outcome is unknown.
impl crate::BatchWriter for Salesforce {
    fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn applied(&mut self, items: &[&OutboxItem]) -> Result<Vec<i64>, ConnectError> {
        self.applied_updates(items)
    }

    fn send(&mut self, items: &[OutboxItem]) -> Result<Reply, Failure> {
        let records: Vec<Value> = items
            .iter()
            .map(|i| {
                let mut r: Value = serde_json::from_str(&i.payload).unwrap_or(json!({}));
                r["attributes"] = json!({"type": "Account"});
                r["id"] = json!(i.target);
                r
            })
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        self.client.send(
            Method::Patch,
            &format!("{API}/composite/sobjects"),
            Some(&body),
        )
    }

    fn answered(
        &mut self,
        app: &App,
        todo: Vec<OutboxItem>,
        r: Reply,
        d: &mut crate::hubspot::Delivery,
    ) -> Result<(), ConnectError> {
        if r.status != 200 {
            // The whole request refused (400, 404, …): Salesforce's message on each.
            let ids: Vec<i64> = todo.iter().map(|i| i.id).collect();
            let reason = format!("{}: {}", r.status, r.message());
            app.store()?
                .outbox_mark(&ids, OutboxMark::Dead { reason: &reason })?;
            d.dead += ids.len() as u64;
            return Ok(());
        }
        let results = r.body.as_array().cloned().unwrap_or_default();
        let mut sent = Vec::new();
        let mut store = app.store()?;
        for (i, item) in todo.iter().enumerate() {
            let res = results.get(i);
            if res.and_then(|x| x.get("success")).and_then(Value::as_bool) == Some(true) {
                sent.push((item.id, None));
            } else {
                let reason = res
                    .and_then(|x| x.get("errors"))
                    .and_then(|e| e.get(0))
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.get("statusCode").and_then(Value::as_str).unwrap_or(""),
                            e.get("message").and_then(Value::as_str).unwrap_or("")
                        )
                    })
                    .unwrap_or_else(|| "no result for this record".into());
                store.outbox_mark(&[item.id], OutboxMark::Dead { reason: &reason })?;
                d.dead += 1;
            }
        }
        store.outbox_mark_sent(&sent)?;
        d.sent += sent.len() as u64;
        Ok(())
    }

    fn give_up(
        &mut self,
        _app: &App,
        items: &[OutboxItem],
        d: &mut crate::hubspot::Delivery,
    ) -> Result<(), ConnectError> {
        d.left += items.len() as u64;
        Ok(())
    }

    fn stop(&self, f: Failure, attempts: u32) -> ConnectError {
        to_error(f, "an sObject Collections update", attempts)
    }
}

/// Field values equal (numbers compared as numbers).
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(x), Some(y)) => x == y,
        (None | Some(Value::Null), None | Some(Value::Null)) => true,
        _ => false,
    }
}

/// Enqueue the latest run's Account updates whose values changed since the last ones
/// enqueued. Returns how many.
pub fn enqueue(app: &App) -> Result<u64, ConnectError> {
    let last: HashMap<String, Value> = app
        .store()?
        .outbox_latest_payloads(CRM, KIND_UPDATE)?
        .into_iter()
        .map(|(t, p)| (t, serde_json::from_str(&p).unwrap_or(Value::Null)))
        .collect();
    let mut rows: Vec<(String, String)> = Vec::new();
    let info = match app.export(&mut |r| {
        if !is_account_id(&r.account_id) {
            return Ok(());
        }
        let score = r.icp_score.parse::<f64>().ok();
        let mut values = json!({
            "ABM_Cluster__c": r.cluster,
            "ABM_Tier__c": r.tier,
            "ABM_ICP_Score__c": score,
            "ABM_Next_Action__c": r.next_action,
        });
        if let Some(seg) = &r.segment {
            values[ABM_SEGMENT_FIELD] = json!(seg);
        }
        if last.get(&r.account_id) != Some(&values) {
            rows.push((r.account_id.clone(), values.to_string()));
        }
        Ok(())
    }) {
        Ok(info) => info,
        Err(abm_app::AppError::Store(
            abm_store::StoreError::NoRun | abm_store::StoreError::NoRuns,
        )) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let keys: Vec<String> = rows
        .iter()
        .map(|(t, _)| format!("salesforce:account:{t}:run{}", info.run))
        .collect();
    let items: Vec<NewOutboxItem<'_>> = rows
        .iter()
        .zip(&keys)
        .map(|((target, payload), key)| NewOutboxItem {
            key,
            crm: CRM,
            kind: KIND_UPDATE,
            target,
            payload,
        })
        .collect();
    Ok(app.store()?.outbox_enqueue(&items)?)
}

/// Percent-encode a query parameter.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_soql_and_values() {
        assert!(is_account_id("001000000000001AAA"));
        assert!(is_account_id("001000000000001"));
        assert!(!is_account_id("006000000000001AAA"));
        assert!(!is_account_id("001'; DROP"));
        assert_eq!(encode("a b>=c'"), "a+b%3E%3Dc%27");
        assert_eq!(
            soql_datetime(Instant::parse("2026-01-02T03:04:05.678Z").unwrap()),
            "2026-01-02T03:04:05Z"
        );
        assert!(same(Some(&json!(80.0)), Some(&json!(80))));
        assert!(!same(Some(&json!("A")), Some(&json!("B"))));
    }
}
