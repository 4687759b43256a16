//! The commented `abm.toml` that `abm init` writes: the defaults serialized from
//! `Config::default()` (so they cannot drift from the code's), with a comment before each section.

use abm_core::Config;

const COMMENTS: &[(&str, &str)] = &[
    ("[icp.tiers]", "# ICP tiers: score thresholds (score = points earned / points possible × 100).\n# A ≥ a, B ≥ b, C ≥ c, D ≥ d, else E. An input icp_tier / icp_score wins over these."),
    ("[[icp.criteria]]", "# ICP criteria, each with points. kind = \"in\" (field in values), \"equals\", \"range\"\n# (min/max inclusive), \"bands\" (first matching band's points), \"contains\" (a ;-separated\n# list field such as tech_stack contains any value). field = any account column, custom ones too.\n# Graded: kind = \"in\" with points per value instead of values, e.g.\n# points = { paid_search = 10, organic = 8, email = 2 } (possible points = the largest).\n# An empty field follows [icp] missing and is listed as missing in the explanation.\n# The default industry (30 core, 20 adjacent, 10 reachable) and country (15 core markets,\n# 8 secondary) criteria are graded, so a file with only industry and country spreads over A–E."),
    ("[engagement]", "# Engagement level (docs/rules.md). Events count when as_of − window_days ≤ occurred_at ≤ as_of.\n# High: any `high` event, an active open deal, or ≥ high_contacts distinct engaged contacts.\n# Medium: any `medium` event or ≥ medium_contacts. Low: any `low` event. short_windows narrow a type's\n# window (website_visit counts only within 30 days). demotion_signals are not engagement.\n# An open deal with no stage change for stalled_after_days is stalled (not engagement)."),
    ("[triggers]", "# Buying triggers: has_triggers = at least one trigger within window_days of as_of."),
    ("[[decision_table]]", "# Entry rules, first match wins. tiers = A–E; engagement = high/medium/low/none or \"any\";\n# triggers = \"yes\", \"no\" or \"any\"; cluster = cluster_icp, future_pipeline, active_focus, monitor_only.\n# Every (tier, engagement, triggers) combination must match a row."),
    ("[movement]", "# Movement between runs (docs/rules.md): demotion rules are checked first; promotions into\n# approve_promotion_to and demotions out of approve_demotion_from wait for a reviewer."),
    ("[checkpoints]", "# Conflict checkpoints: when signals disagree, a human looks — for accounts in or entering\n# conflict_clusters, one checkpoint per account. Tier D/E with High engagement is a \"re-score\n# this account\" suggestion in the next action, never a checkpoint; a demotion signal that a\n# demotion rule of the account's cluster acts on ([movement]) is that rule's move or proposal,\n# not a second checkpoint."),
    ("[programs]", "# Program per cluster."),
    ("[next_actions]", "# The first half of each cluster's next action; the engine appends what is missing for the\n# next promotion, computed from the decision table."),
    ("[micro_segment]", "# Future Pipeline micro-segments: challenge/vertical/stage."),
    ("[verticals]", "# industry (lower case) → vertical, for micro-segments. Unknown industries are \"other\"."),
    ("[capacity.cluster_icp]", "# Recommended cluster sizes; counts outside are warnings. Active Focus above max opens a\n# capacity checkpoint. Each bound is absolute (min, max) or a share of the accounts\n# (min_share, max_share between 0 and 1, e.g. max_share = 0.05 for 5%).\n# [capacity.customer] (the customer track, [customers] mode = \"track\") is optional: no\n# range and no warning when left out."),
    ("[inputs]", "# How real export files are read. builtin_values: the built-in value maps (HubSpot and\n# Salesforce industry labels, country names and codes, CRM activity types) under [values].\n# date_formats: strftime per file kind, file stem or column (engagement = \"%m/%d/%Y\",\n# orders = \"%d-%m-%Y\", \"deals.closed_at\" = \"%Y%m%d\"); ISO dates are always accepted."),
    ("[inputs.deals]", "# A deal's outcome when the file has no outcome column: is_closed/is_won columns, else the\n# stage (case-insensitive): won_stages → won, lost_stages → lost, any other → open.\n# Per pipeline: [inputs.deals.pipelines.NAME] won_stages = [...], lost_stages = [...]."),
    ("[values]", "# Value maps: [values.FIELD] \"label in the file\" = \"value in this config\" (case-insensitive),\n# e.g. [values.industry] \"Hospital & Health Care\" = \"healthcare\"; [values.country] USA = \"US\";\n# [values.event_types] \"Demo Booked\" = \"demo\", NOTE = \"ignore\" (accepted, counts for nothing)."),
    ("[columns.accounts]", "# Column mappings: canonical name = \"header in your file\". For example\n# industry = \"sector\" or employees = \"num. of employees\". Unmapped columns keep their names.\n# A constant for every row: type = { value = \"order\" }. Per file, by its stem (several\n# engagement files, each its own): [columns.files.orders] account_id = \"CustomerID\"."),
];

const ICP_SECTION: &str =
    "# A field present in the input but empty for one account: missing = \"neutral\" leaves the\n\
# criterion out of that account's points possible, \"zero\" makes it earn 0. A criterion over a\n\
# field that no input provides is left out for every account (cluster_summary.json names it\n\
# in criteria_without_data).\n\
[icp]\nmissing = \"neutral\"\n\n";

const CUSTOMERS_SECTION: &str = "\n# Customers: an account with a won deal by as_of. mode = \"expansion\" keeps it in its\n\
# prospect cluster with this program and expansion/renewal next actions (renewal due\n\
# renewal_days after the last win; 0 = none); mode = \"track\" moves it to the customer\n\
# track (cluster `customer`, beside the decision table; [capacity.customer] is optional);\n\
# mode = \"off\" reads customers as prospects.\n\
# products: what a customer could buy; its next action and explanation name the ones none of\n\
# its won deals carries (whitespace). Empty: every product named on a deal created by as_of.\n\
[customers]\nmode = \"expansion\"\nprogram = \"expansion\"\nnext_action = \"Account management: expand and renew\"\nrenewal_days = 365\nproducts = []\n";

const REVIEW_SECTION: &str =
    "\n# Unreviewed checkpoints (ages in days of as_of since the run that opened them; 0 = off):\n\
# expire_after_days closes them with the reason, escalate_after_days lists them in the run's\n\
# summary, auto_approve_demotions_after_days approves pending demotion proposals.\n\
[review]\nexpire_after_days = 0\nescalate_after_days = 0\nauto_approve_demotions_after_days = 0\n";

const ANALYTICS_SECTION: &str = "\n# Segments for `abm analyze` (none by default: the built-ins by cluster, tier and Future\n\
# Pipeline micro-segment always exist). An account is in a segment when every criterion holds\n\
# (the ICP criteria's kinds; points may be left out). For example:\n\
# [[segments]]\n\
# name = \"us_software_midmarket\"\n\
# description = \"US software companies, 200–5000 employees\"\n\
# [[segments.criteria]]\n\
# kind = \"in\"\n\
# field = \"industry\"\n\
# values = [\"software\"]\n\
# [[segments.criteria]]\n\
# kind = \"range\"\n\
# field = \"employees\"\n\
# min = 200\n\
# max = 5000\n\
\n\
# `abm analyze`: clv = \"observed\" (won revenue per customer × margin) or \"annual\" (annual\n\
# won revenue per customer × margin ÷ churn_rate; set churn_rate = 0.2 for 20% a year).\n\
# margin_by_segment overrides margin per segment key (a segment's name, cluster:NAME, tier:X).\n\
# prioritize: below min_closed_deals closed deals the win rate is not judged (enter when fewer\n\
# than enter_penetration of the accounts are customers, else maintain); exit when the win\n\
# rate's upper 95% bound is below exit_win_rate or LTV:CAC below exit_ltv_cac; grow when the\n\
# win rate's lower 95% bound is ≥ grow_win_rate_ratio × all accounts' rate and won revenue\n\
# grew (or LTV:CAC ≥ grow_ltv_cac); enter when as strong but few accounts are customers;\n\
# else maintain.\n\
# segment_column = true adds a `segment` column (the [[segments]] each account is in) to the\n\
# assignments of `abm segment` and `abm export` (or pass --segment-column). Buying pattern:\n\
# engagement counted from buying_window_days before a won deal was created to its close;\n\
# meeting_types are the event types counted as meetings. Capacity guidance projects the\n\
# clusters capacity_horizon_days ahead at the movement rates of the recorded runs.\n\
[analytics]\nclv = \"observed\"\nmargin = 1.0\nsegment_column = false\nbuying_window_days = 90\nmeeting_types = [\"meeting\"]\ncapacity_horizon_days = 91\n\n[analytics.prioritize]\nmin_closed_deals = 10\nexit_win_rate = 0.1\nexit_ltv_cac = 1.0\nenter_penetration = 0.1\ngrow_win_rate_ratio = 1.0\ngrow_ltv_cac = 3.0\n";

const ENRICH_SECTION: &str = "\n# Enrichment (`abm enrich`, the MCP tool enrich_company): provider = \"none\" (default),\n\
# \"file\" (file = a CSV or JSON Lines file keyed by domain) or \"http\": GET base_url + path\n\
# ({domain} replaced) with Authorization: Bearer $token_env; 200 = a JSON object of account\n\
# fields (or map fields to JSON pointers: [enrich.fields] industry = \"/company/industry\"),\n\
# 404 = unknown. Answers are cached in the cache file (JSON Lines) for ttl_days (0 = no cache);\n\
# at most max_per_second requests. Filled fields are marked in the explanation (docs/enrichment.md).\n\
[enrich]\nprovider = \"none\"\nfile = \"\"\nbase_url = \"\"\npath = \"/companies?domain={domain}\"\ntoken_env = \"ABM_ENRICH_TOKEN\"\nttl_days = 30\ncache = \".abm-enrich-cache.jsonl\"\ntimeout_ms = 10000\nmax_per_second = 10\n\n[enrich.fields]\n";

const NEWS_SECTION: &str = "\n# News feeds a server's caller names (the MCP tool fetch_company_news): http(s) only; a host\n\
# resolving to a loopback, private, link-local, unique-local, multicast or unspecified address\n\
# is refused unless allow_hosts names it (a host, \"*.corp.example\" for its subdomains, or an IP\n\
# address). Every address is checked and connected to as checked; each redirect is checked\n\
# again (at most max_redirects); a feed over max_bytes or timeout_ms is refused. `abm news fetch`\n\
# (your own command, your own files and URLs) is not restricted.\n\
[news]\nallow_hosts = []\nmax_redirects = 5\nmax_bytes = 10485760\ntimeout_ms = 30000\n";

pub fn commented_default() -> String {
    let body = toml::to_string(&Config::default()).expect("config serializes");
    let mut out = String::from(
        "# abm.toml — the Cluster ABM engine's rules. Every value below is the default (docs/config.md);\n\
         # change what your team does differently. `abm --config abm.toml …` (or ./abm.toml) uses it.\n\n",
    );
    let mut seen = std::collections::HashSet::new();
    for line in body.lines() {
        let t = line.trim();
        // Keys left out of the serialized defaults (so that existing configs keep their hash)
        // are written out here, with their default.
        if t == "[icp.tiers]" && !body.contains("[icp]") {
            out.push_str(ICP_SECTION);
        }
        if let Some((_, c)) = COMMENTS.iter().find(|(h, _)| *h == t) {
            if seen.insert(t.to_string()) {
                if !out.ends_with("\n\n") {
                    out.push('\n');
                }
                out.push_str(c);
                out.push('\n');
            }
        }
        out.push_str(line);
        out.push('\n');
        if t.starts_with("conflict_mixed_signals =") && !body.contains("conflict_clusters") {
            out.push_str("conflict_clusters = [\"active_focus\"]\n");
        }
    }
    if !body.contains("[customers]") {
        out.push_str(CUSTOMERS_SECTION);
    }
    if !body.contains("[review]") {
        out.push_str(REVIEW_SECTION);
    }
    if !body.contains("[analytics]") {
        out.push_str(ANALYTICS_SECTION);
    }
    if !body.contains("[enrich]") {
        out.push_str(ENRICH_SECTION);
    }
    if !body.contains("[news]") {
        out.push_str(NEWS_SECTION);
    }
    if !body.contains("[columns.accounts]") {
        out.push_str("\n# Column mappings: canonical name = \"header in your file\", per input file, e.g.\n# [columns.accounts]\n# industry = \"sector\"\n# employees = \"num. of employees\"\n# A constant for every row: type = { value = \"order\" }. Per file, by its stem (several\n# engagement files, each its own): [columns.files.orders] account_id = \"CustomerID\"\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_parses_back_to_the_defaults() {
        let text = commented_default();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
        assert!(text.contains("# Entry rules, first match wins"));
        assert!(text.contains("window_days = 90"));
        assert!(text.contains("[icp]\nmissing = \"neutral\""), "{text}");
        assert!(text.contains("[customers]\nmode = \"expansion\""), "{text}");
        assert!(text.contains("[analytics]\nclv = \"observed\""), "{text}");
        assert!(text.contains("# [[segments]]"), "{text}");
        assert!(text.contains("[enrich]\nprovider = \"none\""), "{text}");
        assert!(text.contains("[news]\nallow_hosts = []"), "{text}");
        assert!(
            text.contains("conflict_clusters = [\"active_focus\"]"),
            "{text}"
        );
    }
}
