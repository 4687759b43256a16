//! HubSpot CRM v3: `abm sync hubspot`.
//!
//! 1. **Pull.** Companies through the search endpoint (`after` paging, 200 a page, sorted by
//!    `hs_lastmodifieddate`; a query stops short of HubSpot's 10,000-result cap and the next
//!    one starts at the last modification date seen), from the stored watermark or `--since`.
//!    Meetings, calls, emails and notes (list endpoint with their company and contact
//!    associations) become engagement records; deals (with their companies) deal records.
//!    All go through [`App::import_records`]: the same validation and rejections as a file.
//! 2. **Run** ([`App::run`]).
//! 3. **Write-back through the outbox.** For every account of the latest run whose id is a
//!    HubSpot company id: `abm_cluster`, `abm_tier`, `abm_icp_score`, `abm_next_action`,
//!    `abm_updated_at`, and `abm_segment` when the run recorded `[[segments]]` (the
//!    property group `abm` and the properties are created when
//!    missing); an item is enqueued only when those values differ from the ones last
//!    enqueued for the company. One note per movement, carrying from → to, the rule, the
//!    evidence and a token naming the outbox item. Then the outbox is delivered:
//!    `batch/update` in batches of ≤ 100 (a 207 handled item by item; a 400 for a batch is
//!    split to find the item at fault), notes one by one. An item whose last attempt had an
//!    unknown outcome is checked first: a company update by reading the company's properties
//!    back, a note by searching for its token, so nothing is applied twice.

use crate::http::{Client, Failure, Method, Reply};
use crate::ConnectError;
use abm_app::records::{RecordBatch, RecordKind};
use abm_app::{App, RecordsImported, RunObserver};
use abm_core::Instant;
use abm_store::outbox::{NewOutboxItem, OutboxItem, OutboxMark, OutboxStatus};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};

const CRM: &str = "hubspot";
/// The search endpoint's cap on one query's results.
pub const SEARCH_CAP: usize = 10_000;
/// Results per search page (HubSpot's maximum).
pub const SEARCH_PAGE: usize = 200;
/// Inputs per batch update (HubSpot's maximum).
pub const BATCH_UPDATE_MAX: usize = 100;
/// `hs_note_body` limit.
pub const NOTE_BODY_MAX: usize = 65_536;
/// Note → company (HUBSPOT_DEFINED).
pub const NOTE_TO_COMPANY: u32 = 190;
/// The outbox kinds.
pub const KIND_UPDATE: &str = "company_update";
pub const KIND_NOTE: &str = "note";
/// Attempts over all syncs after which an item is dead.
pub const MAX_TOTAL_ATTEMPTS: i64 = 50;
/// Notes marked `sending` (and then recorded as sent) in one transaction.
const NOTES_PER_MARK: usize = 100;

/// The company properties abm writes (group `abm`).
pub const ABM_PROPERTIES: [(&str, &str, &str, &str); 6] = [
    ("abm_cluster", "ABM cluster", "string", "text"),
    ("abm_tier", "ABM tier", "string", "text"),
    ("abm_icp_score", "ABM ICP score", "number", "number"),
    ("abm_next_action", "ABM next action", "string", "textarea"),
    ("abm_updated_at", "ABM updated at", "datetime", "date"),
    // Written when the run recorded [[segments]]: the ones the company is in (`a;b`).
    ("abm_segment", "ABM segment", "string", "text"),
];

/// The company properties read.
const COMPANY_PROPERTIES: [(&str, &str); 8] = [
    ("name", "name"),
    ("domain", "domain"),
    ("industry", "industry"),
    ("numberofemployees", "employees"),
    ("annualrevenue", "annual_revenue"),
    ("country", "country"),
    ("founded_year", "founded_year"),
    ("description", "description"),
];

/// What `abm sync hubspot` does.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Pull companies modified at or after this instant (default: the stored watermark;
    /// none: everything).
    pub since: Option<Instant>,
    /// Pull and validate only: nothing imported, run, enqueued or sent.
    pub dry_run: bool,
    /// The run's `as_of` (default: now).
    pub as_of: Option<Instant>,
    /// Deliver the outbox only (no pull, no run): `abm outbox retry` then a sync.
    pub deliver_only: bool,
}

/// What a sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub companies: usize,
    pub engagements: usize,
    pub deals: usize,
    /// The import's counts and rejections (not on a dry run).
    pub imported: Option<RecordsImported>,
    pub run_id: Option<i64>,
    pub updates_enqueued: u64,
    pub notes_enqueued: u64,
    pub delivery: Delivery,
    pub requests: u64,
    pub rate_limited: u64,
    pub watermark: Option<String>,
}

/// What the delivery of the outbox did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivery {
    /// Items delivered now.
    pub sent: u64,
    /// Items found already applied when checked (an earlier attempt's unknown outcome).
    pub confirmed: u64,
    /// Refused by HubSpot (400, 404, a 207 error), with its message in the outbox.
    pub dead: u64,
    /// Left for the next sync (transient failures outlived this sync's retries).
    pub left: u64,
}

/// The HubSpot connector over a client.
pub struct HubSpot {
    pub client: Client,
}

fn to_error(f: Failure, what: &str, attempts: u32) -> ConnectError {
    match f {
        Failure::Unauthorized { status, message } => ConnectError::Unauthorized {
            crm: "HubSpot",
            status,
            message,
        },
        Failure::DailyLimit { message } => ConnectError::DailyLimit {
            crm: "HubSpot",
            message,
        },
        Failure::Transient { reason, .. } => ConnectError::Unavailable {
            crm: "HubSpot",
            what: what.to_string(),
            attempts,
            reason,
        },
    }
}

fn protocol(what: &str, reason: impl Into<String>) -> ConnectError {
    ConnectError::Protocol {
        crm: "HubSpot",
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// A property's value as text (HubSpot sends every property as a string or null).
fn prop<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.get("properties")?
        .get(name)?
        .as_str()
        .filter(|s| !s.trim().is_empty())
}

/// The ids of an object's associated `kind` (list endpoint with `associations=`).
fn associated(obj: &Value, kind: &str) -> Vec<String> {
    obj.get("associations")
        .and_then(|a| a.get(kind))
        .and_then(|a| a.get("results"))
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|x| x.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The token embedded in a note's body that names its outbox item (one search token:
/// letters and digits only).
pub fn note_token(account_id: &str, movement_id: i64) -> String {
    let clean: String = account_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("abmnote{clean}m{movement_id}")
}

/// Epoch milliseconds of an instant (HubSpot's date filters and `hs_timestamp`).
fn millis(t: Instant) -> i64 {
    t.0.div_euclid(1000)
}

impl HubSpot {
    pub fn new(client: Client) -> HubSpot {
        HubSpot { client }
    }

    fn read(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Reply, ConnectError> {
        let max = self.client.settings().max_attempts;
        self.client
            .request(method, path, body)
            .map_err(|f| to_error(f, what, max))
    }

    fn read_ok(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, ConnectError> {
        let r = self.read(method, path, body, what)?;
        if !r.is_success() {
            return Err(ConnectError::Api {
                crm: "HubSpot",
                what: what.to_string(),
                status: r.status,
                message: r.message(),
            });
        }
        Ok(r.body)
    }

    /// Companies modified at or after `since`, as account records, and the latest
    /// modification date seen (the next watermark).
    pub fn pull_companies(
        &mut self,
        since: Option<Instant>,
    ) -> Result<(Vec<Value>, Option<String>), ConnectError> {
        let what = "the company search";
        let mut from_ms = since.map(millis).unwrap_or(0);
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        let mut latest: Option<(i64, String)> = None;
        let mut properties: Vec<&str> = COMPANY_PROPERTIES.iter().map(|p| p.0).collect();
        properties.push("hs_lastmodifieddate");
        loop {
            // One query (window): at most SEARCH_CAP results.
            let mut after: Option<String> = None;
            let mut fetched = 0usize;
            let mut window_last_ms = from_ms;
            let mut capped = false;
            loop {
                let mut body = json!({
                    "filterGroups": [{"filters": [{
                        "propertyName": "hs_lastmodifieddate", "operator": "GTE",
                        "value": from_ms.to_string()
                    }]}],
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                    "properties": properties,
                    "limit": SEARCH_PAGE,
                });
                if let Some(a) = &after {
                    body["after"] = json!(a);
                }
                let page = self.read_ok(
                    Method::Post,
                    "/crm/v3/objects/companies/search",
                    Some(&body),
                    what,
                )?;
                let results = page
                    .get("results")
                    .and_then(Value::as_array)
                    .ok_or_else(|| protocol(what, "no results array"))?;
                fetched += results.len();
                for c in results {
                    let id = c
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| protocol(what, "a company without an id"))?;
                    let modified = prop(c, "hs_lastmodifieddate").unwrap_or("");
                    if let Ok(t) = Instant::parse(modified) {
                        let ms = millis(t);
                        window_last_ms = window_last_ms.max(ms);
                        if latest.as_ref().is_none_or(|(l, _)| ms > *l) {
                            latest = Some((ms, modified.to_string()));
                        }
                    }
                    if !seen.insert(id.to_string()) {
                        continue;
                    }
                    let mut rec = Map::new();
                    rec.insert("account_id".into(), json!(id));
                    for (hs, ours) in COMPANY_PROPERTIES {
                        if let Some(v) = prop(c, hs) {
                            rec.insert(ours.into(), json!(v));
                        }
                    }
                    out.push(Value::Object(rec));
                }
                let next = page.pointer("/paging/next/after").and_then(|a| {
                    a.as_str()
                        .map(str::to_string)
                        .or_else(|| a.as_u64().map(|n| n.to_string()))
                });
                match next {
                    None => break,
                    Some(a) => {
                        // The next page would start at or beyond the cap: HubSpot answers 400.
                        if fetched + SEARCH_PAGE > SEARCH_CAP {
                            capped = true;
                            break;
                        }
                        after = Some(a);
                    }
                }
            }
            if !capped {
                break;
            }
            if window_last_ms <= from_ms {
                return Err(protocol(
                    what,
                    format!("more than {SEARCH_CAP} companies were modified in the same millisecond ({from_ms})"),
                ));
            }
            // The next window starts at the last date seen (GTE: that date's companies are
            // read again and skipped by id).
            from_ms = window_last_ms;
        }
        Ok((out, latest.map(|l| l.1)))
    }

    /// Every object of `object` (`meetings`, `deals`, …) through the list endpoint, with
    /// `properties` and the associations to `associations`.
    fn list_all(
        &mut self,
        object: &str,
        properties: &[&str],
        associations: &str,
    ) -> Result<Vec<Value>, ConnectError> {
        let what = format!("the {object} list");
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!(
                "/crm/v3/objects/{object}?limit=100&properties={}&associations={associations}",
                properties.join(",")
            );
            if let Some(a) = &after {
                path.push_str("&after=");
                path.push_str(a);
            }
            let page = self.read_ok(Method::Get, &path, None, &what)?;
            let results = page
                .get("results")
                .and_then(Value::as_array)
                .ok_or_else(|| protocol(&what, "no results array"))?;
            out.extend(results.iter().cloned());
            match page.pointer("/paging/next/after").and_then(Value::as_str) {
                Some(a) => after = Some(a.to_string()),
                None => break,
            }
        }
        Ok(out)
    }

    /// Meetings, calls, emails and notes associated with companies, as engagement records.
    pub fn pull_engagements(&mut self) -> Result<Vec<Value>, ConnectError> {
        let mut out = Vec::new();
        for (object, ty) in [
            ("meetings", "MEETING"),
            ("calls", "CALL"),
            ("emails", "EMAIL"),
            ("notes", "NOTE"),
        ] {
            let props: &[&str] = match object {
                "emails" => &["hs_timestamp", "hs_email_direction"],
                "notes" => &["hs_timestamp", "hs_note_body"],
                _ => &["hs_timestamp"],
            };
            for e in self.list_all(object, props, "companies,contacts")? {
                let companies = associated(&e, "companies");
                if companies.is_empty() {
                    continue;
                }
                // abm's own notes say nothing about the buyer.
                if prop(&e, "hs_note_body").is_some_and(|b| b.starts_with("[abm]")) {
                    continue;
                }
                let id = e.get("id").and_then(Value::as_str).unwrap_or_default();
                let event_type = match (object, prop(&e, "hs_email_direction")) {
                    ("emails", Some(d)) => d.to_string(),
                    _ => ty.to_string(),
                };
                let mut rec = Map::new();
                rec.insert("account_id".into(), json!(companies.join(";")));
                rec.insert(
                    "occurred_at".into(),
                    json!(prop(&e, "hs_timestamp")
                        .or_else(|| e.get("createdAt").and_then(Value::as_str))),
                );
                rec.insert("type".into(), json!(event_type));
                rec.insert("event_id".into(), json!(format!("hubspot:{object}:{id}")));
                if let Some(c) = associated(&e, "contacts").first() {
                    rec.insert("contact_id".into(), json!(c));
                }
                out.push(Value::Object(rec));
            }
        }
        Ok(out)
    }

    /// Deals associated with companies, as deal records.
    pub fn pull_deals(&mut self) -> Result<Vec<Value>, ConnectError> {
        let props = [
            "dealname",
            "dealstage",
            "amount",
            "createdate",
            "closedate",
            "pipeline",
            "hs_is_closed",
            "hs_is_closed_won",
            "hs_lastmodifieddate",
        ];
        let mut out = Vec::new();
        for d in self.list_all("deals", &props, "companies")? {
            let companies = associated(&d, "companies");
            if companies.is_empty() {
                continue;
            }
            let mut rec = Map::new();
            rec.insert("deal_id".into(), json!(d.get("id").and_then(Value::as_str)));
            rec.insert("account_id".into(), json!(companies.join(";")));
            for (hs, ours) in [
                ("dealstage", "stage"),
                ("amount", "amount"),
                ("createdate", "created_at"),
                ("pipeline", "pipeline"),
                ("hs_lastmodifieddate", "last_stage_change_at"),
            ] {
                if let Some(v) = prop(&d, hs) {
                    rec.insert(ours.into(), json!(v));
                }
            }
            let closed = prop(&d, "hs_is_closed");
            if let Some(c) = closed {
                rec.insert("is_closed".into(), json!(c));
                if let Some(w) = prop(&d, "hs_is_closed_won") {
                    rec.insert("is_won".into(), json!(w));
                }
            }
            // HubSpot's closedate is the expected one while a deal is open.
            if closed == Some("true") {
                if let Some(v) = prop(&d, "closedate") {
                    rec.insert("closed_at".into(), json!(v));
                }
            }
            out.push(Value::Object(rec));
        }
        Ok(out)
    }

    /// Create the property group `abm` and the properties abm writes, when missing.
    pub fn ensure_properties(&mut self) -> Result<(), ConnectError> {
        let what = "the abm property group";
        let g = self.read(
            Method::Get,
            "/crm/v3/properties/companies/groups/abm",
            None,
            what,
        )?;
        if g.status == 404 {
            let body = json!({"name": "abm", "label": "ABM", "displayOrder": -1});
            let r = self.read(
                Method::Post,
                "/crm/v3/properties/companies/groups",
                Some(&body),
                what,
            )?;
            if !r.is_success() && r.status != 409 {
                return Err(ConnectError::Api {
                    crm: "HubSpot",
                    what: what.into(),
                    status: r.status,
                    message: r.message(),
                });
            }
        }
        for (name, label, ty, field) in ABM_PROPERTIES {
            let what = format!("the company property {name}");
            let p = self.read(
                Method::Get,
                &format!("/crm/v3/properties/companies/{name}"),
                None,
                &what,
            )?;
            if p.status == 404 {
                let body = json!({"name": name, "label": label, "type": ty, "fieldType": field, "groupName": "abm"});
                let r = self.read(
                    Method::Post,
                    "/crm/v3/properties/companies",
                    Some(&body),
                    &what,
                )?;
                if !r.is_success() && r.status != 409 {
                    return Err(ConnectError::Api {
                        crm: "HubSpot",
                        what,
                        status: r.status,
                        message: r.message(),
                    });
                }
            } else if !p.is_success() {
                return Err(ConnectError::Api {
                    crm: "HubSpot",
                    what,
                    status: p.status,
                    message: p.message(),
                });
            }
        }
        Ok(())
    }

    /// The whole sync: pull, import, run, enqueue, deliver.
    pub fn sync(
        &mut self,
        app: &App,
        opts: &SyncOptions,
        log: &dyn Fn(&str),
    ) -> Result<SyncReport, ConnectError> {
        let mut report = SyncReport::default();
        if !opts.deliver_only {
            let since = match opts.since {
                Some(t) => Some(t),
                None => match app.store()?.watermark(CRM, "companies")? {
                    Some(w) => Some(Instant::parse(&w).map_err(|e| {
                        ConnectError::Invalid(format!("stored watermark {w:?}: {e}"))
                    })?),
                    None => None,
                },
            };
            log(&format!(
                "pulling companies{}",
                since
                    .map(|s| format!(" modified since {s}"))
                    .unwrap_or_default()
            ));
            let (companies, watermark) = self.pull_companies(since)?;
            let engagements = self.pull_engagements()?;
            let deals = self.pull_deals()?;
            report.companies = companies.len();
            report.engagements = engagements.len();
            report.deals = deals.len();
            report.watermark = watermark.clone();
            log(&format!(
                "pulled {} companies, {} engagements, {} deals",
                companies.len(),
                engagements.len(),
                deals.len()
            ));
            if opts.dry_run {
                report.requests = self.client.requests;
                return Ok(report);
            }
            let batches = [
                RecordBatch::new(RecordKind::Accounts, "hubspot:companies", companies),
                RecordBatch::new(RecordKind::Engagement, "hubspot:engagements", engagements),
                RecordBatch::new(RecordKind::Deals, "hubspot:deals", deals),
            ];
            let imported = app.import_records(&batches)?;
            if let Some(w) = &watermark {
                app.store()?.set_watermark(CRM, "companies", w)?;
            }
            report.imported = Some(imported);
            let outcome = app.run(opts.as_of, None, RunObserver::default());
            let run_id = match outcome {
                Ok(abm_store::RunOutcome::Done(r)) => Some(r.run_id),
                Ok(abm_store::RunOutcome::Unchanged { run, .. }) => Some(run),
                Err(abm_app::AppError::Store(abm_store::StoreError::NoAccounts)) => None,
                Err(e) => return Err(e.into()),
            };
            report.run_id = run_id;
            let (u, n) = enqueue(app)?;
            report.updates_enqueued = u;
            report.notes_enqueued = n;
            log(&format!("enqueued {u} company updates and {n} notes"));
            if !app.store()?.outbox_due(CRM, KIND_UPDATE, 0, 1)?.is_empty() {
                self.ensure_properties()?;
            }
        } else if opts.dry_run {
            return Ok(report);
        }
        let result = self.deliver(app, log, &mut report.delivery);
        report.requests = self.client.requests;
        report.rate_limited = self.client.rate_limited;
        result?;
        Ok(report)
    }

    /// Send what the outbox holds for HubSpot.
    pub fn deliver(
        &mut self,
        app: &App,
        log: &dyn Fn(&str),
        d: &mut Delivery,
    ) -> Result<(), ConnectError> {
        let mut after = 0;
        loop {
            let items = app
                .store()?
                .outbox_due(CRM, KIND_UPDATE, after, BATCH_UPDATE_MAX)?;
            let Some(last) = items.last() else { break };
            after = last.id;
            self.deliver_updates(app, items, d)?;
        }
        let mut after = 0;
        loop {
            let items = app
                .store()?
                .outbox_due(CRM, KIND_NOTE, after, NOTES_PER_MARK)?;
            let Some(last) = items.last() else { break };
            after = last.id;
            self.deliver_notes(app, &items, d)?;
        }
        log(&format!(
            "delivered {} writes ({} found already applied), {} refused, {} left for the next sync",
            d.sent, d.confirmed, d.dead, d.left
        ));
        Ok(())
    }

    /// Notes of the outbox, delivered. Marked `sending` together before any is sent: an item
    /// is never sent unless it is marked, so after a crash every item that may have been
    /// sent is checked first. Deliveries are recorded together after the chunk; a crash
    /// before that only costs a check.
    pub fn deliver_notes(
        &mut self,
        app: &App,
        items: &[OutboxItem],
        d: &mut Delivery,
    ) -> Result<(), ConnectError> {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        app.store()?.outbox_mark(&ids, OutboxMark::Sending)?;
        let mut sent: Vec<(i64, Option<String>)> = Vec::new();
        let mut result = Ok(());
        for it in items {
            match self.deliver_note(app, it, d) {
                Ok(Some(remote)) => sent.push((it.id, remote)),
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let sent_refs: Vec<(i64, Option<&str>)> =
            sent.iter().map(|(i, r)| (*i, r.as_deref())).collect();
        app.store()?.outbox_mark_sent(&sent_refs)?;
        result
    }

    /// Companies matching `query` (HubSpot's full-text search over name, domain, phone and
    /// website), at most `limit` (≤ 200), with the properties abm reads.
    pub fn search_companies(
        &mut self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Value>, ConnectError> {
        let mut properties: Vec<&str> = COMPANY_PROPERTIES.iter().map(|p| p.0).collect();
        properties.extend(ABM_PROPERTIES.iter().map(|p| p.0));
        properties.push("hs_lastmodifieddate");
        let body = json!({
            "query": query,
            "properties": properties,
            "limit": limit.clamp(1, SEARCH_PAGE),
        });
        let what = "the company search";
        let page = self.read_ok(
            Method::Post,
            "/crm/v3/objects/companies/search",
            Some(&body),
            what,
        )?;
        let results = page
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| protocol(what, "no results array"))?;
        Ok(results
            .iter()
            .map(|c| {
                let mut o = Map::new();
                o.insert("id".into(), c.get("id").cloned().unwrap_or(Value::Null));
                for p in &properties {
                    if let Some(v) = prop(c, p) {
                        o.insert((*p).to_string(), json!(v));
                    }
                }
                Value::Object(o)
            })
            .collect())
    }

    /// A note on a company, through the outbox: stored under an idempotency key (`key`, else
    /// one made from the company and the text) before it is sent, so the same note asked for
    /// twice is posted once, and a note HubSpot could not take now stays in the outbox for
    /// the next `abm sync hubspot` (the playbook's "log and continue").
    pub fn add_note(
        &mut self,
        app: &App,
        company_id: &str,
        text: &str,
        at: Instant,
        key: Option<&str>,
    ) -> Result<NoteOutcome, ConnectError> {
        if !is_company_id(company_id) {
            return Err(ConnectError::Invalid(format!(
                "company id {company_id:?}: HubSpot's company ids are decimal numbers"
            )));
        }
        if text.trim().is_empty() {
            return Err(ConnectError::Invalid("the note is empty".into()));
        }
        let digest = fnv1a(&format!("{company_id}\n{}\n{text}", key.unwrap_or("")));
        let token = format!("abmagent{company_id}h{digest:016x}");
        let outbox_key = format!("hubspot:agent-note:{company_id}:{digest:016x}");
        let payload = note_payload(text.to_string(), &token, millis(at));
        app.store()?.outbox_enqueue(&[NewOutboxItem {
            key: &outbox_key,
            crm: CRM,
            kind: KIND_NOTE,
            target: company_id,
            payload: &payload,
        }])?;
        let item = app
            .store()?
            .outbox_get(&outbox_key)?
            .ok_or_else(|| ConnectError::Invalid(format!("outbox item {outbox_key} vanished")))?;
        let mut d = Delivery::default();
        if matches!(
            item.status,
            OutboxStatus::Pending | OutboxStatus::Failed | OutboxStatus::Sending
        ) {
            match self.deliver_notes(app, std::slice::from_ref(&item), &mut d) {
                // HubSpot unavailable or answering oddly: the note waits in the outbox.
                Ok(())
                | Err(
                    ConnectError::Unavailable { .. }
                    | ConnectError::Api { .. }
                    | ConnectError::Protocol { .. },
                ) => {}
                Err(e) => return Err(e),
            }
        }
        let item = app
            .store()?
            .outbox_get(&outbox_key)?
            .ok_or_else(|| ConnectError::Invalid(format!("outbox item {outbox_key} vanished")))?;
        Ok(NoteOutcome {
            outbox_id: item.id,
            key: item.key,
            status: item.status,
            note_id: item.remote_id,
            reason: item.reason,
            already_there: d.sent == 0 && d.confirmed == 0 && item.status == OutboxStatus::Sent,
        })
    }

    /// One batch of company updates (≤ 100), retried within this sync.
    fn deliver_updates(
        &mut self,
        app: &App,
        items: Vec<OutboxItem>,
        d: &mut Delivery,
    ) -> Result<(), ConnectError> {
        crate::deliver_batch(self, app, items, d)
    }

    /// Items out of attempts for this sync: dead after [`MAX_TOTAL_ATTEMPTS`], else left.
    fn out_of_attempts(
        &mut self,
        app: &App,
        items: &[OutboxItem],
        d: &mut Delivery,
    ) -> Result<(), ConnectError> {
        let mut store = app.store()?;
        for i in items {
            if i.attempts >= MAX_TOTAL_ATTEMPTS {
                store.outbox_mark(
                    &[i.id],
                    OutboxMark::Dead {
                        reason: &format!(
                            "{} attempts failed: {}",
                            i.attempts,
                            i.reason.as_deref().unwrap_or("")
                        ),
                    },
                )?;
                d.dead += 1;
            } else {
                d.left += 1;
            }
        }
        Ok(())
    }

    /// Of the updates whose outcome is unknown, those HubSpot already shows.
    fn applied_updates(&mut self, items: &[&OutboxItem]) -> Result<Vec<i64>, ConnectError> {
        let names: Vec<&str> = ABM_PROPERTIES.iter().map(|p| p.0).collect();
        let body = json!({
            "properties": names,
            "inputs": items.iter().map(|i| json!({"id": i.target})).collect::<Vec<_>>(),
        });
        let what = "reading back company updates";
        let r = self.read(
            Method::Post,
            "/crm/v3/objects/companies/batch/read",
            Some(&body),
            what,
        )?;
        if !(r.status == 200 || r.status == 207) {
            return Ok(Vec::new());
        }
        let mut by_id: BTreeMap<&str, &Value> = BTreeMap::new();
        for c in r
            .body
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = c.get("id").and_then(Value::as_str) {
                by_id.insert(id, c);
            }
        }
        Ok(items
            .iter()
            .filter(|i| {
                let Some(c) = by_id.get(i.target.as_str()) else {
                    return false;
                };
                let want: Value = serde_json::from_str(&i.payload).unwrap_or(Value::Null);
                want.as_object()
                    .is_some_and(|w| w.iter().all(|(k, v)| prop(c, k) == v.as_str()))
            })
            .map(|i| i.id)
            .collect())
    }

    /// Whether a note carrying `token` exists.
    ///
    /// The search index lags writes by a few seconds, so when the search finds nothing the
    /// company's notes are read too (associations and object reads are consistent).
    fn note_exists(&mut self, token: &str, company: &str) -> Result<Option<String>, ConnectError> {
        let has_token = |n: &Value| {
            prop(n, "hs_note_body").is_some_and(|b| b.split_whitespace().any(|w| w == token))
        };
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_note_body", "operator": "CONTAINS_TOKEN", "value": token}]}],
            "properties": ["hs_note_body"],
            "limit": 10,
        });
        let found = self.read_ok(
            Method::Post,
            "/crm/v3/objects/notes/search",
            Some(&body),
            "the note search",
        )?;
        let hit = found
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|n| has_token(n))
            .and_then(|n| n.get("id").and_then(Value::as_str).map(str::to_string));
        if hit.is_some() || !is_company_id(company) {
            return Ok(hit);
        }
        // The company's notes, newest pages included.
        let what = "the company's notes";
        let mut ids: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path =
                format!("/crm/v4/objects/companies/{company}/associations/notes?limit=500");
            if let Some(a) = &after {
                path.push_str("&after=");
                path.push_str(a);
            }
            let page = self.read_ok(Method::Get, &path, None, what)?;
            for r in page
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match r.get("toObjectId") {
                    Some(Value::Number(n)) => ids.push(n.to_string()),
                    Some(Value::String(s)) => ids.push(s.clone()),
                    _ => {}
                }
            }
            match page.pointer("/paging/next/after").and_then(Value::as_str) {
                Some(a) => after = Some(a.to_string()),
                None => break,
            }
        }
        for chunk in ids.chunks(100) {
            let body = json!({
                "properties": ["hs_note_body"],
                "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            });
            let page = self.read_ok(
                Method::Post,
                "/crm/v3/objects/notes/batch/read",
                Some(&body),
                what,
            )?;
            if let Some(n) = page
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|n| has_token(n))
            {
                return Ok(n.get("id").and_then(Value::as_str).map(str::to_string));
            }
        }
        Ok(None)
    }

    /// One note (already marked `sending` by the caller), retried within this sync; checked
    /// first when an earlier attempt's outcome is unknown. `Some(remote id)` when delivered
    /// or found delivered (the caller records it); `None` when refused or left.
    fn deliver_note(
        &mut self,
        app: &App,
        item: &OutboxItem,
        d: &mut Delivery,
    ) -> Result<Option<Option<String>>, ConnectError> {
        let payload: Value = serde_json::from_str(&item.payload)
            .map_err(|e| ConnectError::Invalid(format!("outbox item {}: {e}", item.id)))?;
        let token = payload
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // Whether an earlier attempt may have been applied.
        let mut maybe_sent = item.status == OutboxStatus::Sending;
        let mut attempt = 0u32;
        let mut attempts = item.attempts + 1;
        let body = json!({
            "properties": {
                "hs_timestamp": payload["hs_timestamp"],
                "hs_note_body": payload["hs_note_body"],
            },
            "associations": [{
                "to": {"id": item.target},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_COMPANY}],
            }],
        });
        loop {
            if maybe_sent {
                if let Some(id) = self.note_exists(&token, &item.target)? {
                    d.confirmed += 1;
                    return Ok(Some(Some(id)));
                }
            }
            match self
                .client
                .send(Method::Post, "/crm/v3/objects/notes", Some(&body))
            {
                Ok(r) if r.is_success() => {
                    d.sent += 1;
                    let id = r.body.get("id").and_then(Value::as_str).map(str::to_string);
                    return Ok(Some(id));
                }
                Ok(r) if (400..500).contains(&r.status) => {
                    let reason = format!("{}: {}", r.status, r.message());
                    app.store()?
                        .outbox_mark(&[item.id], OutboxMark::Dead { reason: &reason })?;
                    d.dead += 1;
                    return Ok(None);
                }
                Ok(r) => {
                    let reason = format!("{}: {}", r.status, r.message());
                    app.store()?
                        .outbox_mark(&[item.id], OutboxMark::Failed { reason: &reason })?;
                    d.left += 1;
                    return Ok(None);
                }
                Err(Failure::Transient {
                    reason,
                    maybe_applied,
                }) => {
                    // The item stays `sending` (marked before the first attempt): the next
                    // attempt, in this sync or a later one, checks first when it may have
                    // been applied.
                    maybe_sent |= maybe_applied;
                    attempt += 1;
                    if attempt >= self.client.settings().max_attempts {
                        let mark = if maybe_sent {
                            OutboxMark::Unknown { reason: &reason }
                        } else {
                            OutboxMark::Failed { reason: &reason }
                        };
                        app.store()?.outbox_mark(&[item.id], mark)?;
                        let mut it = item.clone();
                        it.attempts = attempts;
                        it.reason = Some(reason);
                        self.out_of_attempts(app, &[it], d)?;
                        return Ok(None);
                    }
                    attempts += 1;
                    let wait = self.client.backoff_wait(attempt - 1);
                    std::thread::sleep(wait);
                    // Counted (the item is `sending` already).
                    app.store()?.outbox_mark(&[item.id], OutboxMark::Sending)?;
                }
                Err(f) => {
                    if !maybe_sent {
                        app.store()?.outbox_mark(
                            &[item.id],
                            OutboxMark::Failed {
                                reason: &format!("{f:?}"),
                            },
                        )?;
                    }
                    return Err(to_error(f, "a note", attempt + 1));
                }
            }
        }
    }
}

/// Company updates: `batch/update` (a 207 handled item by item; a 400 or 404 for a batch is
/// split to find the items at fault), read back when an outcome is unknown.
impl crate::BatchWriter for HubSpot {
    fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn applied(&mut self, items: &[&OutboxItem]) -> Result<Vec<i64>, ConnectError> {
        self.applied_updates(items)
    }

    fn send(&mut self, items: &[OutboxItem]) -> Result<Reply, Failure> {
        let inputs: Vec<Value> = items
            .iter()
            .map(|i| json!({"id": i.target, "properties": serde_json::from_str::<Value>(&i.payload).unwrap_or(Value::Null)}))
            .collect();
        self.client.send(
            Method::Post,
            "/crm/v3/objects/companies/batch/update",
            Some(&json!({"inputs": inputs})),
        )
    }

    fn answered(
        &mut self,
        app: &App,
        todo: Vec<OutboxItem>,
        r: Reply,
        d: &mut Delivery,
    ) -> Result<(), ConnectError> {
        let ids: Vec<i64> = todo.iter().map(|i| i.id).collect();
        match r.status {
            200 | 207 => {
                // Ids named by an error are refused; the others were applied.
                let mut refused: BTreeMap<String, String> = BTreeMap::new();
                if let Some(errors) = r.body.get("errors").and_then(Value::as_array) {
                    for e in errors {
                        let msg = e
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("error")
                            .to_string();
                        let cat = e.get("category").and_then(Value::as_str).unwrap_or("");
                        for id in e
                            .pointer("/context/ids")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            if let Some(id) = id.as_str() {
                                refused
                                    .insert(id.to_string(), format!("{} {cat}: {msg}", r.status));
                            }
                        }
                    }
                }
                let mut store = app.store()?;
                let sent: Vec<i64> = todo
                    .iter()
                    .filter(|i| !refused.contains_key(&i.target))
                    .map(|i| i.id)
                    .collect();
                store.outbox_mark(&sent, OutboxMark::Sent { remote_id: None })?;
                d.sent += sent.len() as u64;
                for i in todo.iter().filter(|i| refused.contains_key(&i.target)) {
                    store.outbox_mark(
                        &[i.id],
                        OutboxMark::Dead {
                            reason: &refused[&i.target],
                        },
                    )?;
                    d.dead += 1;
                }
            }
            400 | 404 if todo.len() == 1 => {
                let reason = format!("{}: {}", r.status, r.message());
                app.store()?
                    .outbox_mark(&ids, OutboxMark::Dead { reason: &reason })?;
                d.dead += 1;
            }
            400 | 404 => {
                // The batch was refused whole: send each alone to find the ones at fault.
                app.store()?.outbox_mark(
                    &ids,
                    OutboxMark::Failed {
                        reason: &r.message(),
                    },
                )?;
                for mut i in todo {
                    i.status = OutboxStatus::Failed;
                    crate::deliver_batch(self, app, vec![i], d)?;
                }
            }
            _ => {
                let reason = format!("{}: {}", r.status, r.message());
                app.store()?
                    .outbox_mark(&ids, OutboxMark::Failed { reason: &reason })?;
                d.left += ids.len() as u64;
            }
        }
        Ok(())
    }

    fn give_up(
        &mut self,
        app: &App,
        items: &[OutboxItem],
        d: &mut Delivery,
    ) -> Result<(), ConnectError> {
        self.out_of_attempts(app, items, d)
    }

    fn stop(&self, f: Failure, attempts: u32) -> ConnectError {
        to_error(f, "a company batch update", attempts)
    }
}

/// Enqueue the latest run's write-back: a company update where the values differ from the
/// ones last enqueued for that company, a note per movement not enqueued yet. Returns
/// (updates, notes).
pub fn enqueue(app: &App) -> Result<(u64, u64), ConnectError> {
    let last: std::collections::HashMap<String, Value> = app
        .store()?
        .outbox_latest_payloads(CRM, KIND_UPDATE)?
        .into_iter()
        .map(|(t, p)| (t, serde_json::from_str(&p).unwrap_or(Value::Null)))
        .collect();
    let mut rows: Vec<(String, Value)> = Vec::new();
    let info = match app.export(&mut |r| {
        if !is_company_id(&r.account_id) {
            return Ok(());
        }
        let mut values = json!({
            "abm_cluster": r.cluster,
            "abm_tier": r.tier,
            "abm_icp_score": r.icp_score,
            "abm_next_action": r.next_action,
        });
        if let Some(seg) = &r.segment {
            values["abm_segment"] = json!(seg);
        }
        let same = last.get(&r.account_id).is_some_and(|p| {
            values
                .as_object()
                .is_some_and(|v| v.iter().all(|(k, x)| p.get(k) == Some(x)))
        });
        if !same {
            rows.push((r.account_id.clone(), values));
        }
        Ok(())
    }) {
        Ok(info) => Some(info),
        Err(abm_app::AppError::Store(
            abm_store::StoreError::NoRun | abm_store::StoreError::NoRuns,
        )) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(info) = info else { return Ok((0, 0)) };
    // abm_updated_at: the run's as_of, as HubSpot's datetime (epoch milliseconds).
    let updated_at = millis(info.as_of).to_string();
    let keyed: Vec<(String, String, String)> = rows
        .into_iter()
        .map(|(target, mut v)| {
            v["abm_updated_at"] = json!(updated_at);
            (
                format!("hubspot:company:{target}:run{}", info.run),
                target,
                v.to_string(),
            )
        })
        .collect();
    let items: Vec<NewOutboxItem<'_>> = keyed
        .iter()
        .map(|(key, target, payload)| NewOutboxItem {
            key,
            crm: CRM,
            kind: KIND_UPDATE,
            target,
            payload,
        })
        .collect();
    let updates = app.store()?.outbox_enqueue(&items)?;

    let mut keys = Vec::new();
    let mut notes = Vec::new();
    let mut note_targets = Vec::new();
    for m in app.movements(None)? {
        if !is_company_id(&m.account_id) {
            continue;
        }
        let token = note_token(&m.account_id, m.id);
        let ts = millis(m.as_of);
        let mut body = format!(
            "[abm] {} → {} ({}) as of {}\nRule: {}\nEvidence: {}",
            m.from,
            m.to,
            m.direction,
            m.as_of,
            m.rule,
            serde_json::to_string(&m.evidence).unwrap_or_default()
        );
        if let Some(by) = &m.approved_by {
            body.push_str(&format!("\nApproved by: {by}"));
        }
        keys.push(format!("hubspot:note:{}:{}", m.account_id, m.id));
        notes.push(note_payload(body, &token, ts));
        note_targets.push(m.account_id.clone());
    }
    let items: Vec<NewOutboxItem<'_>> = keys
        .iter()
        .zip(&notes)
        .zip(&note_targets)
        .map(|((key, payload), target)| NewOutboxItem {
            key,
            crm: CRM,
            kind: KIND_NOTE,
            target,
            payload,
        })
        .collect();
    let notes = app.store()?.outbox_enqueue(&items)?;
    Ok((updates, notes))
}

/// An outbox note's payload: the text (cut to fit) ending with the line naming its token,
/// the timestamp in epoch milliseconds, and the token.
fn note_payload(mut body: String, token: &str, ts_ms: i64) -> String {
    let tail = format!("\nabm outbox key: {token}");
    if body.len() + tail.len() > NOTE_BODY_MAX {
        let mut cut = NOTE_BODY_MAX - tail.len() - 3;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push('…');
    }
    body.push_str(&tail);
    json!({"hs_timestamp": ts_ms.to_string(), "hs_note_body": body, "token": token}).to_string()
}

/// FNV-1a, 64 bits: a stable digest for idempotency keys (not a security hash).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What [`HubSpot::add_note`] did.
#[derive(Debug, Clone, Serialize)]
pub struct NoteOutcome {
    /// The outbox item (see `abm outbox list`).
    pub outbox_id: i64,
    pub key: String,
    /// `sent`; `failed` or `sending` (unconfirmed): left for the next sync; `dead`: refused.
    pub status: OutboxStatus,
    /// HubSpot's id of the note, once sent.
    pub note_id: Option<String>,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    /// The same note was already delivered earlier: nothing was sent now.
    pub already_there: bool,
}

/// HubSpot's object ids are decimal numbers.
pub fn is_company_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_tokens_are_one_search_word() {
        assert_eq!(note_token("123", 42), "abmnote123m42");
        assert_eq!(note_token("A-1 x", 7), "abmnoteA1xm7");
        assert!(is_company_id("9876543210"));
        assert!(!is_company_id("A1"));
        assert!(!is_company_id(""));
    }
}
