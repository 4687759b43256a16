//! Which column of the user's file feeds which canonical field: the config's mapping first, then
//! the preset (HubSpot, Salesforce), then the canonical name itself (case-insensitive).

use crate::IngestError;
pub use abm_core::inputs::ColumnSource;
use std::collections::BTreeMap;

/// Built-in mappings of common CRM exports onto the canonical names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Hubspot,
    Salesforce,
}

impl Preset {
    pub fn parse(s: &str) -> Option<Preset> {
        match s.to_ascii_lowercase().as_str() {
            "hubspot" => Some(Preset::Hubspot),
            "salesforce" | "sfdc" => Some(Preset::Salesforce),
            _ => None,
        }
    }

    /// For an activity export with no activity-type column (HubSpot exports one object per
    /// file), the type every row has, told by the object's own columns.
    pub fn activity_type(self, header: &[String]) -> Option<&'static str> {
        let has = |n: &str| find(header, n).is_some();
        match self {
            Preset::Hubspot => [
                ("Meeting name", "MEETING"),
                ("Meeting outcome", "MEETING"),
                ("Call Title", "CALL"),
                ("Call outcome", "CALL"),
                ("Email subject", "EMAIL"),
                ("Task Title", "TASK"),
                ("Task Type", "TASK"),
                ("Note body", "NOTE"),
            ]
            .into_iter()
            .find(|(col, _)| has(col))
            .map(|(_, t)| t),
            Preset::Salesforce => None,
        }
    }

    /// Source header names for a canonical field of the given file kind.
    pub fn sources(self, kind: FileKind, canonical: &str) -> &'static [&'static str] {
        use FileKind::*;
        match (self, kind, canonical) {
            (Preset::Hubspot, Accounts, "account_id") => &["Record ID", "Company ID"],
            (Preset::Hubspot, Accounts, "name") => &["Company name", "Name"],
            (Preset::Hubspot, Accounts, "domain") => &["Company Domain Name", "Website URL"],
            (Preset::Hubspot, Accounts, "industry") => &["Industry"],
            (Preset::Hubspot, Accounts, "employees") => &["Number of Employees"],
            (Preset::Hubspot, Accounts, "annual_revenue") => &["Annual Revenue"],
            (Preset::Hubspot, Accounts, "country") => &["Country/Region", "Country"],
            (Preset::Hubspot, Accounts, "founded_year") => &["Year Founded"],
            (Preset::Hubspot, Accounts, "tech_stack") => &["Web Technologies"],
            (Preset::Hubspot, Deals, "deal_id") => &["Record ID", "Deal ID"],
            (Preset::Hubspot, Deals, "account_id") => &["Associated Company IDs", "Company ID"],
            (Preset::Hubspot, Deals, "stage") => &["Deal Stage"],
            (Preset::Hubspot, Deals, "amount") => &["Amount"],
            (Preset::Hubspot, Deals, "created_at") => &["Create Date"],
            (Preset::Hubspot, Deals, "closed_at") => &["Close Date"],
            (Preset::Hubspot, Deals, "last_stage_change_at") => {
                &["Date entered current stage", "Last Modified Date"]
            }
            (Preset::Hubspot, Deals, "pipeline") => &["Pipeline"],
            (Preset::Hubspot, Deals, "owner") => &["Deal owner", "Deal Owner"],
            // Activities (meetings, calls, emails, notes, tasks), one object per export file or
            // several in one with an activity-type column.
            (Preset::Hubspot, Engagement, "account_id") => &[
                "Associated Company IDs (Primary)",
                "Associated Company IDs",
                "Associated Company ID",
                "Company ID",
            ],
            (Preset::Hubspot, Engagement, "occurred_at") => &[
                "Activity date",
                "Meeting start time",
                "Due date",
                "Create date",
                "Create Date",
            ],
            (Preset::Hubspot, Engagement, "type") => &[
                "Activity type",
                "Activity Type",
                "Engagement type",
                "Email direction",
            ],
            (Preset::Hubspot, Engagement, "contact_id") => &[
                "Associated Contact IDs",
                "Associated Contact ID",
                "Contact ID",
            ],
            (Preset::Hubspot, Engagement, "event_id") => &["Record ID", "Activity ID"],
            (Preset::Hubspot, Engagement, "detail") => &[
                "Meeting name",
                "Call Title",
                "Email subject",
                "Task Title",
                "Note body",
            ],
            (Preset::Salesforce, Accounts, "account_id") => &["Id", "Account ID"],
            (Preset::Salesforce, Accounts, "name") => &["Name", "Account Name"],
            (Preset::Salesforce, Accounts, "domain") => &["Website"],
            (Preset::Salesforce, Accounts, "industry") => &["Industry"],
            (Preset::Salesforce, Accounts, "employees") => &["NumberOfEmployees", "Employees"],
            (Preset::Salesforce, Accounts, "annual_revenue") => {
                &["AnnualRevenue", "Annual Revenue"]
            }
            (Preset::Salesforce, Accounts, "country") => &["BillingCountry", "Billing Country"],
            (Preset::Salesforce, Accounts, "founded_year") => &["YearStarted"],
            (Preset::Salesforce, Deals, "deal_id") => &["Id", "Opportunity ID"],
            (Preset::Salesforce, Deals, "account_id") => &["AccountId", "Account ID"],
            (Preset::Salesforce, Deals, "stage") => &["StageName", "Stage"],
            (Preset::Salesforce, Deals, "amount") => &["Amount"],
            (Preset::Salesforce, Deals, "created_at") => &["CreatedDate", "Created Date"],
            (Preset::Salesforce, Deals, "closed_at") => &["CloseDate", "Close Date"],
            (Preset::Salesforce, Deals, "last_stage_change_at") => &["LastStageChangeDate"],
            (Preset::Salesforce, Deals, "is_closed") => &["IsClosed", "Closed"],
            (Preset::Salesforce, Deals, "is_won") => &["IsWon", "Won"],
            (Preset::Salesforce, Deals, "pipeline") => &["RecordTypeId", "Record Type"],
            (Preset::Salesforce, Deals, "owner") => &["OwnerId", "Opportunity Owner"],
            // Task and Event.
            (Preset::Salesforce, Engagement, "account_id") => &["AccountId", "Account ID"],
            (Preset::Salesforce, Engagement, "occurred_at") => &[
                "ActivityDateTime",
                "StartDateTime",
                "ActivityDate",
                "CompletedDateTime",
                "CreatedDate",
            ],
            (Preset::Salesforce, Engagement, "type") => {
                &["Type", "TaskSubtype", "EventSubtype", "Activity Type"]
            }
            (Preset::Salesforce, Engagement, "contact_id") => &["WhoId", "Contact ID"],
            (Preset::Salesforce, Engagement, "event_id") => &["Id", "Activity ID"],
            (Preset::Salesforce, Engagement, "detail") => &["Subject"],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Accounts,
    Engagement,
    Triggers,
    Deals,
}

impl FileKind {
    pub fn canonical(self) -> &'static [&'static str] {
        match self {
            FileKind::Accounts => abm_core::account::STANDARD_COLUMNS,
            FileKind::Engagement => &[
                "account_id",
                "occurred_at",
                "type",
                "contact_id",
                "event_id",
                "detail",
            ],
            FileKind::Triggers => &[
                "account_id",
                "occurred_at",
                "type",
                "source",
                "headline",
                "strength",
            ],
            FileKind::Deals => &[
                "deal_id",
                "account_id",
                "stage",
                "amount",
                "created_at",
                "closed_at",
                "last_stage_change_at",
                "outcome",
                "product",
                "owner",
                "pipeline",
                "is_closed",
                "is_won",
                "stage_history",
            ],
        }
    }

    pub fn required(self) -> &'static [&'static str] {
        match self {
            FileKind::Accounts => abm_core::account::REQUIRED_COLUMNS,
            FileKind::Engagement => &["account_id", "occurred_at", "type"],
            FileKind::Triggers => &["account_id", "occurred_at", "type"],
            // `outcome`: or `stage`, or `is_closed` (see `[inputs.deals]`); checked in `project`.
            FileKind::Deals => &["deal_id", "account_id", "created_at"],
        }
    }

    pub fn default_stem(self) -> &'static str {
        match self {
            FileKind::Accounts => "accounts",
            FileKind::Engagement => "engagement",
            FileKind::Triggers => "triggers",
            FileKind::Deals => "deals",
        }
    }

    pub fn mapping(
        self,
        cols: &abm_core::config::ColumnMappings,
    ) -> &BTreeMap<String, ColumnSource> {
        match self {
            FileKind::Accounts => &cols.accounts,
            FileKind::Engagement => &cols.engagement,
            FileKind::Triggers => &cols.triggers,
            FileKind::Deals => &cols.deals,
        }
    }
}

/// canonical slot → source column, plus (accounts only) the unmapped source columns kept as
/// custom fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub slots: Vec<Option<usize>>,
    pub extras: Vec<(usize, String)>,
    /// Per canonical slot: one value for every row (`type = { value = "order" }`, or the
    /// activity type a preset tells from the header); such a slot has no column.
    pub constants: Vec<Option<String>>,
}

impl Projection {
    pub fn col(&self, slot: usize) -> Option<usize> {
        self.slots[slot]
    }
}

fn find(header: &[String], name: &str) -> Option<usize> {
    header.iter().position(|h| h == name).or_else(|| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
    })
}

pub fn project(
    file: &str,
    header: &[String],
    kind: FileKind,
    mapping: &BTreeMap<String, ColumnSource>,
    preset: Option<Preset>,
) -> Result<Projection, IngestError> {
    let canonical = kind.canonical();
    for key in mapping.keys() {
        if !canonical.contains(&key.as_str()) && kind != FileKind::Accounts {
            return Err(IngestError::Config(format!(
                "columns.{}.{key}: not a column of {} files (expected one of {})",
                kind.default_stem(),
                kind.default_stem(),
                canonical.join(", ")
            )));
        }
    }
    let mut slots = Vec::with_capacity(canonical.len());
    let mut constants = vec![None; canonical.len()];
    for (slot, name) in canonical.iter().enumerate() {
        if let Some(ColumnSource::Constant { value }) = mapping.get(*name) {
            constants[slot] = Some(value.clone());
            slots.push(None);
            continue;
        }
        let col = if let Some(ColumnSource::Column(src)) = mapping.get(*name) {
            Some(find(header, src).ok_or_else(|| IngestError::MissingColumn {
                file: file.to_string(),
                column: src.clone(),
                wanted_for: Some(name.to_string()),
                found: header.to_vec(),
            })?)
        } else {
            preset
                .into_iter()
                .flat_map(|p| p.sources(kind, name).iter())
                .find_map(|s| find(header, s))
                .or_else(|| find(header, name))
        };
        slots.push(col);
    }
    if kind == FileKind::Engagement && slots[2].is_none() && constants[2].is_none() {
        constants[2] = preset
            .and_then(|p| p.activity_type(header))
            .map(str::to_string);
    }
    let has = |n: &str| {
        let i = canonical.iter().position(|c| *c == n).expect("canonical");
        slots[i].is_some() || constants[i].is_some()
    };
    if kind == FileKind::Deals && !(has("outcome") || has("stage") || has("is_closed")) {
        return Err(IngestError::MissingColumn {
            file: file.to_string(),
            column: "outcome".to_string(),
            wanted_for: None,
            found: header.to_vec(),
        });
    }
    for req in kind.required() {
        let i = canonical
            .iter()
            .position(|c| c == req)
            .expect("required is canonical");
        if slots[i].is_none() && constants[i].is_none() {
            return Err(IngestError::MissingColumn {
                file: file.to_string(),
                column: req.to_string(),
                wanted_for: None,
                found: header.to_vec(),
            });
        }
    }
    let mut extras = Vec::new();
    if kind == FileKind::Accounts {
        // Custom fields: mapped names from the config that are not canonical, then every
        // source column no slot uses, under its own name.
        for (key, src) in mapping {
            if !canonical.contains(&key.as_str()) {
                if let Some(c) = src.column().and_then(|src| find(header, src)) {
                    extras.push((c, key.clone()));
                }
            }
        }
        for (i, h) in header.iter().enumerate() {
            let used = slots.contains(&Some(i)) || extras.iter().any(|(c, _)| *c == i);
            let name = h.trim().to_string();
            if !used && !name.is_empty() && !canonical.contains(&name.as_str()) {
                extras.push((i, name));
            }
        }
    }
    Ok(Projection {
        slots,
        extras,
        constants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn identity_preset_and_mapping() {
        let p = project(
            "a.csv",
            &h(&["Account_ID", "name", "sector", "Extra"]),
            FileKind::Accounts,
            &BTreeMap::from([("industry".into(), "sector".into())]),
            None,
        )
        .unwrap();
        assert_eq!(p.slots[0], Some(0));
        assert_eq!(p.slots[1], Some(1));
        assert_eq!(p.slots[3], Some(2));
        assert_eq!(p.extras, vec![(3, "Extra".to_string())]);

        let hs = h(&[
            "Record ID",
            "Company name",
            "Industry",
            "Number of Employees",
            "City",
        ]);
        let p = project(
            "c.csv",
            &hs,
            FileKind::Accounts,
            &BTreeMap::new(),
            Some(Preset::Hubspot),
        )
        .unwrap();
        assert_eq!(&p.slots[..5], &[Some(0), Some(1), None, Some(2), Some(3)]);
        assert_eq!(p.extras, vec![(4, "City".to_string())]);
    }

    #[test]
    fn missing_required_column_names_it() {
        let err = project(
            "e.csv",
            &h(&["account_id", "when", "type"]),
            FileKind::Engagement,
            &BTreeMap::new(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("e.csv") && err.contains("occurred_at"),
            "{err}"
        );
        let err = project(
            "e.csv",
            &h(&["account_id"]),
            FileKind::Accounts,
            &BTreeMap::from([("industry".into(), "Sector".into())]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Sector") && err.contains("industry"), "{err}");
    }
}
