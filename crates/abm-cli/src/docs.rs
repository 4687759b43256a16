//! The reference pages of `docs/` that are generated from the code: the config reference
//! (`docs/config.md`, from `Config::default()` through `abm init`'s commented file) and the
//! preset tables (`docs/presets.md`, from `Preset::sources`). A test fails when a page in the
//! repository differs; `ABM_UPDATE_DOCS=1 cargo test -p abm-cli --bin abm docs` rewrites them.

use abm_io::columns::{FileKind, Preset};

/// `docs/config.md`.
pub fn config_reference() -> String {
    let mut s = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the code (`Config::default()`): do not edit. Regenerate with\n\
         `ABM_UPDATE_DOCS=1 cargo test -p abm-cli --bin abm docs`. -->\n\n\
         `abm.toml` holds every rule a team may change. `abm init` writes this file; every key has\n\
         the default shown, and a key left out keeps its default. Unknown keys are errors naming\n\
         the key. `abm --config FILE …` (or `./abm.toml`) uses it.\n\n\
         Sections: `[icp]` scoring and tiers, `[engagement]` levels and event types, `[triggers]`,\n\
         `[[decision_table]]` the entry rules, `[movement]` and `[checkpoints]` the stateful runs,\n\
         `[programs]`, `[next_actions]`, `[micro_segment]`, `[verticals]`, `[capacity]`,\n\
         `[columns]` column mappings, `[inputs]` date formats and deal stages, `[values]` value\n\
         maps, `[[segments]]` and `[analytics]` for `abm analyze`, `[enrich]` the enrichment\n\
         provider ([enrichment.md](enrichment.md)), `[news]` which feed hosts the server may fetch\n\
         for `fetch_company_news`. See [rules.md](rules.md) for\n\
         what the rules mean and [inputs.md](inputs.md) for the input files.\n\n\
         ```toml\n",
    );
    s.push_str(&crate::config_file::commented_default());
    s.push_str("```\n");
    s
}

/// `docs/presets.md`.
pub fn preset_tables() -> String {
    let mut s = String::from(
        "# Presets\n\n\
         <!-- Generated from the code (`Preset::sources`): do not edit. Regenerate with\n\
         `ABM_UPDATE_DOCS=1 cargo test -p abm-cli --bin abm docs`. -->\n\n\
         `--preset hubspot` or `--preset salesforce` reads each CRM's own export files unedited.\n\
         For each canonical column, the preset looks for the CRM's headers in order (the first one\n\
         present wins, case-insensitive), then the canonical name itself. A mapping in `abm.toml`\n\
         (`[columns.KIND]` or `[columns.files.STEM]`) wins over the preset.\n\n\
         Values are read as the CRMs write them: the built-in value maps (`[inputs] builtin_values\n\
         = true`) turn HubSpot's industry enumeration (`COMPUTER_SOFTWARE`, \"Computer Software\"),\n\
         Salesforce's Industry picklist (\"Finance\") and common country spellings (\"USA\", \"U.S.\",\n\
         \"United States\") into the config's vocabulary, and CRM activity types into event types\n\
         (see [inputs.md](inputs.md#values)). A deal's outcome comes from `IsClosed`/`IsWon` or from\n\
         its stage (`closedwon`, \"Closed Won\" → won; `closedlost`, \"Closed Lost\" → lost; any\n\
         other stage → open; per pipeline in `[inputs.deals.pipelines.NAME]`).\n\n\
         HubSpot exports one activity object per file (meetings, calls, emails, notes, tasks) with no\n\
         type column: the preset tells the object by its columns — `Meeting name`/`Meeting outcome` →\n\
         `MEETING`, `Call Title`/`Call outcome` → `CALL`, `Email subject` → `EMAIL` (or the `Email\n\
         direction` column: `INCOMING_EMAIL`, `EMAIL`, `FORWARDED_EMAIL`), `Task Title`/`Task Type`\n\
         → `TASK`, `Note body` → `NOTE`. Pass each file with its own `--engagement`.\n",
    );
    for (preset, title) in [
        (Preset::Hubspot, "HubSpot (`--preset hubspot`)"),
        (Preset::Salesforce, "Salesforce (`--preset salesforce`)"),
    ] {
        s.push_str(&format!("\n## {title}\n"));
        for (kind, what) in [
            (FileKind::Accounts, "Accounts (companies / Account)"),
            (
                FileKind::Engagement,
                "Engagement (activities / Task, Event)",
            ),
            (FileKind::Triggers, "Triggers"),
            (FileKind::Deals, "Deals (deals / Opportunity)"),
        ] {
            let rows: Vec<String> = kind
                .canonical()
                .iter()
                .filter_map(|c| {
                    let src = preset.sources(kind, c);
                    (!src.is_empty()).then(|| {
                        let names: Vec<String> = src.iter().map(|n| format!("`{n}`")).collect();
                        format!("| `{c}` | {} |\n", names.join(", "))
                    })
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            s.push_str(&format!(
                "\n### {what}\n\n| canonical column | export headers, in order |\n|---|---|\n"
            ));
            for r in rows {
                s.push_str(&r);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check(name: &str, want: String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs")
            .join(name);
        if std::env::var_os("ABM_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/{name} differs from the code: regenerate it with \
             `ABM_UPDATE_DOCS=1 cargo test -p abm-cli --bin abm docs`"
        );
    }

    #[test]
    fn docs_config_reference_is_current() {
        check("config.md", config_reference());
    }

    #[test]
    fn docs_preset_tables_are_current() {
        check("presets.md", preset_tables());
    }
}
