//! News → triggers (`abm news fetch FEEDS`): RSS 2.0 and Atom feeds (from URLs or files,
//! parsed by `feed-rs`), items matched to stored accounts by a domain named in the text and by
//! the normalized company name (case, accents, punctuation and legal suffixes such as Inc.,
//! Ltd, GmbH, S.A. ignored), classified into the trigger vocabulary by keyword/phrase rules
//! (defaults below; a TOML file replaces them), deduped by guid/link, and imported as triggers
//! with their source and headline. No news: engagement alone decides.

use crate::ConnectError;
use abm_core::Instant;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// One feed item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewsItem {
    /// guid (RSS) / id (Atom), else the link.
    pub id: String,
    pub link: Option<String>,
    pub title: String,
    pub summary: String,
    pub published: Option<Instant>,
    /// The feed's title (else where it came from).
    pub source: String,
}

fn invalid(what: &str, reason: impl std::fmt::Display) -> ConnectError {
    ConnectError::Invalid(format!("{what}: {reason}"))
}

/// Parse an RSS 2.0 or Atom document.
pub fn parse_feed(bytes: &[u8], origin: &str) -> Result<Vec<NewsItem>, ConnectError> {
    let feed = feed_rs::parser::parse(bytes).map_err(|e| invalid(origin, e))?;
    let source = feed
        .title
        .as_ref()
        .map(|t| t.content.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| origin.to_string());
    Ok(feed
        .entries
        .into_iter()
        .map(|e| {
            let link = e.links.first().map(|l| l.href.clone());
            let when = e.published.or(e.updated);
            NewsItem {
                id: if e.id.trim().is_empty() {
                    link.clone().unwrap_or_default()
                } else {
                    e.id.clone()
                },
                link,
                title: e.title.map(|t| t.content).unwrap_or_default(),
                summary: e
                    .summary
                    .map(|s| strip_tags(&s.content))
                    .unwrap_or_default(),
                published: when.map(|d| Instant(d.timestamp_micros())),
                source: source.clone(),
            }
        })
        .collect())
}

/// Text without HTML tags (summaries are often HTML).
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// A feed's bytes from an `http(s)://` URL or a file.
pub fn read_feed(location: &str, timeout: std::time::Duration) -> Result<Vec<u8>, ConnectError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .into();
        let mut resp = agent
            .get(location)
            .header("User-Agent", "abm-news/1")
            .call()
            .map_err(|e| invalid(location, e))?;
        resp.body_mut()
            .with_config()
            .limit(32 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| invalid(location, e))
    } else {
        std::fs::read(location).map_err(|e| invalid(location, e))
    }
}

fn fold(c: char) -> &'static str {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ı' | 'ī' => "i",
        'ł' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ť' | 'ţ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        _ => "",
    }
}

/// Lowercase, accents folded, every run of other characters one space; `&` reads "and".
pub fn normalize_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = true;
    for c in s.chars().flat_map(char::to_lowercase) {
        let folded = fold(c);
        if !folded.is_empty() {
            out.push_str(folded);
            space = false;
        } else if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if c == '&' {
            if !space {
                out.push(' ');
            }
            out.push_str("and ");
            space = true;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    out.trim_end().to_string()
}

/// Legal forms dropped from the end of a company name (as normalized tokens).
const LEGAL_SUFFIXES: &[&[&str]] = &[
    &["inc"],
    &["incorporated"],
    &["ltd"],
    &["limited"],
    &["llc"],
    &["llp"],
    &["lp"],
    &["plc"],
    &["corp"],
    &["corporation"],
    &["co"],
    &["company"],
    &["gmbh"],
    &["ag"],
    &["kg"],
    &["se"],
    &["sa"],
    &["s", "a"],
    &["sas"],
    &["s", "a", "s"],
    &["sarl"],
    &["spa"],
    &["s", "p", "a"],
    &["srl"],
    &["bv"],
    &["b", "v"],
    &["nv"],
    &["n", "v"],
    &["ab"],
    &["asa"],
    &["oy"],
    &["oyj"],
    &["pty"],
    &["kk"],
    &["holdings"],
    // Added after reading the labelled set (generic legal forms and designators):
    &["a", "s"],
    &["pbc"],
    &["pte"],
    &["group"],
];

/// A company name for matching: [`normalize_text`] without a leading "The" and its legal
/// form(s) at the end (`Acme, Inc.` and `ACME Inc` → `acme`; `Société Générale S.A.` →
/// `societe generale`; `The Boeing Company` → `boeing`).
pub fn normalize_name(s: &str) -> String {
    let norm = normalize_text(s);
    let mut tokens: Vec<&str> = norm.split(' ').filter(|t| !t.is_empty()).collect();
    // "The Boeing Company" is "Boeing" in a headline.
    if tokens.len() > 1 && tokens[0] == "the" {
        tokens.remove(0);
    }
    loop {
        let before = tokens.len();
        for suffix in LEGAL_SUFFIXES {
            if tokens.len() > suffix.len() && tokens.ends_with(suffix) {
                tokens.truncate(tokens.len() - suffix.len());
                break;
            }
        }
        if tokens.len() == before {
            break;
        }
    }
    tokens.join(" ")
}

/// A domain for matching: lowercase, without scheme, `www.` and path.
pub fn normalize_domain(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_start_matches("www.");
    s.split(['/', '?', '#']).next().unwrap_or("").to_string()
}

/// Finds the accounts an item is about.
pub struct Matcher {
    ids: Vec<String>,
    by_name: HashMap<String, Vec<usize>>,
    by_domain: HashMap<String, Vec<usize>>,
    longest: usize,
}

/// Names shorter than this (normalized) are not matched by name: too many false hits.
const MIN_NAME_LEN: usize = 3;

impl Matcher {
    /// Over `(account_id, name, domain)`.
    pub fn new<'a>(
        accounts: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>,
    ) -> Matcher {
        let mut m = Matcher {
            ids: Vec::new(),
            by_name: HashMap::new(),
            by_domain: HashMap::new(),
            longest: 1,
        };
        for (id, name, domain) in accounts {
            let i = m.ids.len();
            m.ids.push(id.to_string());
            let n = normalize_name(name);
            // "Amazon.com, Inc." is "Amazon" in a headline (and "Amazon.com" in others).
            let bare = n
                .strip_suffix(" com")
                .filter(|b| b.len() >= MIN_NAME_LEN)
                .map(str::to_string);
            for n in std::iter::once(n).chain(bare) {
                if n.len() >= MIN_NAME_LEN {
                    m.longest = m.longest.max(n.split(' ').count());
                    let ix = m.by_name.entry(n).or_default();
                    if !ix.contains(&i) {
                        ix.push(i);
                    }
                }
            }
            if let Some(d) = domain.map(normalize_domain).filter(|d| d.contains('.')) {
                m.by_domain.entry(d).or_default().push(i);
            }
        }
        m
    }

    /// The account ids `text` names (by a domain in it, or by a name as whole words).
    pub fn find(&self, text: &str) -> Vec<&str> {
        let mut hits: Vec<usize> = Vec::new();
        // Domains: any word with a dot.
        for w in text
            .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"' | '\'' | ';'))
        {
            let w = w.trim_end_matches(['.', ':', '!', '?']);
            if w.contains('.') {
                let d = normalize_domain(w);
                if let Some(ix) = self.by_domain.get(&d) {
                    hits.extend(ix);
                }
            }
        }
        let norm = normalize_text(text);
        let tokens: Vec<&str> = norm.split(' ').filter(|t| !t.is_empty()).collect();
        for start in 0..tokens.len() {
            for len in 1..=self.longest.min(tokens.len() - start) {
                let gram = tokens[start..start + len].join(" ");
                if let Some(ix) = self.by_name.get(&gram) {
                    hits.extend(ix);
                }
            }
        }
        let mut seen = HashSet::new();
        hits.retain(|i| seen.insert(*i));
        hits.iter().map(|&i| self.ids[i].as_str()).collect()
    }
}

/// Keyword/phrase rules: the first trigger type (in order) with a phrase in the text wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// A trigger type of the vocabulary (`funding_round`, …).
    #[serde(rename = "type")]
    pub trigger_type: String,
    /// Words or phrases, matched as whole words after [`normalize_text`]; `*` is any one word.
    pub phrases: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        let r = |t: &str, p: &[&str]| Rule {
            trigger_type: t.to_string(),
            phrases: p.iter().map(|s| s.to_string()).collect(),
        };
        Rules {
            rules: vec![
                r(
                    "layoffs",
                    &[
                        "layoffs",
                        "layoff",
                        "lays off",
                        "lay off",
                        "laying off",
                        "laid off",
                        "job cuts",
                        "cut jobs",
                        "cuts jobs",
                        "cuts * jobs",
                        "cut * jobs",
                        "cuts * * jobs",
                        "to cut * jobs",
                        "cuts * staff",
                        "cuts * workforce",
                        "redundancies",
                        "workforce reduction",
                        "downsizing",
                    ],
                ),
                r(
                    "merger_acquisition",
                    &[
                        "acquires",
                        "acquiring",
                        "acquired",
                        "acquisition",
                        "to acquire",
                        "to buy",
                        "buys",
                        "merger",
                        "merge",
                        "merges",
                        "takeover",
                        "take over",
                        "deal to buy",
                    ],
                ),
                r(
                    "funding_round",
                    &[
                        "raises",
                        "raising",
                        "raised",
                        "funding",
                        "funding round",
                        "series a",
                        "series b",
                        "series c",
                        "series d",
                        "seed round",
                        "venture",
                        "valuation",
                        "ipo",
                        "investment from",
                        "backed by",
                    ],
                ),
                r(
                    "leadership_change",
                    &[
                        "ceo",
                        "cfo",
                        "cto",
                        "coo",
                        "chief executive",
                        "chief financial officer",
                        "appoints",
                        "appointed",
                        "names",
                        "named",
                        "steps down",
                        "step down",
                        "resigns",
                        "resignation",
                        "successor",
                        "new chair",
                        "chairman",
                    ],
                ),
                r(
                    "regulatory_change",
                    &[
                        "regulator",
                        "regulators",
                        "regulation",
                        "regulatory",
                        "antitrust",
                        "fined",
                        "fines",
                        "fine",
                        "lawsuit",
                        "sued",
                        "sues",
                        "suing",
                        "probe",
                        "investigation",
                        "sanctions",
                        "compliance",
                        "gdpr",
                        "sec",
                        "ftc",
                        "ban",
                        "bans",
                        "banned",
                        "banning",
                    ],
                ),
                r(
                    "product_launch",
                    &[
                        "launches",
                        "launching",
                        "launched",
                        "launch",
                        "unveils",
                        "unveiled",
                        "introduces",
                        "debuts",
                        "rolls out",
                        "new product",
                        "release",
                        "releases",
                        "announces new",
                    ],
                ),
                r(
                    "expansion",
                    &[
                        "expands",
                        "expanding",
                        "expansion",
                        "expand",
                        "opens",
                        "opening",
                        "new office",
                        "new headquarters",
                        "new factory",
                        "new plant",
                        "enters",
                        "new market",
                        "invest in",
                        "to invest",
                        "builds",
                    ],
                ),
                r(
                    "hiring_surge",
                    &[
                        "hiring",
                        "to hire",
                        "hire",
                        "hires",
                        "recruiting",
                        "recruit",
                        "new jobs",
                        "jobs",
                    ],
                ),
            ],
        }
    }
}

impl Rules {
    /// Rules from a TOML file: `[[rules]] type = "funding_round" phrases = ["raises", …]`.
    pub fn from_toml(text: &str) -> Result<Rules, ConnectError> {
        toml::from_str(text).map_err(|e| invalid("news rules", e))
    }

    /// The trigger type `text` is about, if any.
    pub fn classify(&self, text: &str) -> Option<&str> {
        let norm = normalize_text(text);
        let hay: Vec<&str> = norm.split(' ').filter(|t| !t.is_empty()).collect();
        self.rules
            .iter()
            .find(|r| r.phrases.iter().any(|p| phrase_in(p, &hay)))
            .map(|r| r.trigger_type.as_str())
    }
}

/// Whether `phrase` occurs in `hay` as whole words; a `*` in the phrase stands for any one
/// word (`cuts * jobs` matches "cuts 200 jobs").
fn phrase_in(phrase: &str, hay: &[&str]) -> bool {
    let pat: Vec<String> = phrase
        .split_whitespace()
        .map(|w| {
            if w == "*" {
                "*".to_string()
            } else {
                normalize_text(w)
            }
        })
        .filter(|w| !w.is_empty())
        .flat_map(|w| {
            if w == "*" {
                vec![w]
            } else {
                w.split(' ').map(str::to_string).collect()
            }
        })
        .collect();
    if pat.is_empty() || pat.len() > hay.len() {
        return false;
    }
    hay.windows(pat.len())
        .any(|win| win.iter().zip(&pat).all(|(h, p)| p == "*" || h == p))
}

/// What turning news into triggers found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewsReport {
    pub items: usize,
    /// Items seen before (same guid/link) in this fetch.
    pub duplicates: usize,
    /// Items without a date (not imported: a trigger needs one).
    pub undated: usize,
    pub matched: usize,
    pub classified: usize,
    /// Trigger records (one per matched account of a classified item).
    pub triggers: Vec<Value>,
}

/// Match and classify `items` into trigger records.
pub fn triggers(items: &[NewsItem], matcher: &Matcher, rules: &Rules) -> NewsReport {
    let mut rep = NewsReport {
        items: items.len(),
        ..NewsReport::default()
    };
    let mut seen: HashSet<&str> = HashSet::new();
    for it in items {
        // The same story by guid or by link.
        let keys: Vec<&str> = [Some(it.id.as_str()), it.link.as_deref()]
            .into_iter()
            .flatten()
            .filter(|k| !k.is_empty())
            .collect();
        if keys.iter().any(|k| seen.contains(k)) {
            rep.duplicates += 1;
            continue;
        }
        seen.extend(keys);
        let text = format!("{}\n{}", it.title, it.summary);
        let accounts = matcher.find(&text);
        if accounts.is_empty() {
            continue;
        }
        rep.matched += 1;
        let Some(ty) = rules.classify(&text) else {
            continue;
        };
        rep.classified += 1;
        let Some(when) = it.published else {
            rep.undated += 1;
            continue;
        };
        for a in accounts {
            rep.triggers.push(json!({
                "account_id": a,
                "occurred_at": when.to_string(),
                "type": ty,
                "source": format!("news: {}", it.source),
                "headline": it.title.trim(),
            }));
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_without_case_accents_or_legal_forms() {
        assert_eq!(normalize_name("Acme, Inc."), "acme");
        assert_eq!(normalize_name("ACME Inc"), "acme");
        assert_eq!(normalize_name("Société Générale S.A."), "societe generale");
        assert_eq!(normalize_name("Müller GmbH & Co. KG"), "muller gmbh and");
        assert_eq!(normalize_name("Nestlé S.A."), "nestle");
        // A possessive is its own word: "Intel's" still names Intel.
        assert_eq!(normalize_name("Macy's, Inc."), "macy s");
        assert_eq!(normalize_text("INTEL'S job cuts"), "intel s job cuts");
        assert_eq!(normalize_name("Inc"), "inc", "a name is never emptied");
        assert_eq!(normalize_name("The Boeing Company"), "boeing");
        assert_eq!(normalize_name("The"), "the");
        assert_eq!(normalize_domain("https://www.Acme.com/about"), "acme.com");
    }

    #[test]
    fn items_match_by_name_or_domain_as_whole_words() {
        let m = Matcher::new([
            ("1", "Acme Corp", Some("acme.com")),
            ("2", "Société Générale", None),
            ("3", "Go", None),
            ("4", "Bolt", Some("https://bolt.eu/")),
        ]);
        assert_eq!(m.find("ACME raises $20M"), ["1"]);
        assert_eq!(m.find("Societe Generale names new CEO"), ["2"]);
        assert_eq!(m.find("Read more at acme.com."), ["1"]);
        assert!(m.find("Acmetech raises").is_empty(), "whole words only");
        assert!(
            m.find("Let's go shopping").is_empty(),
            "names under 3 letters are not matched"
        );
        assert_eq!(m.find("Bolt and Acme merge"), ["4", "1"]);
    }

    #[test]
    fn headlines_are_classified_by_the_first_rule_that_matches() {
        let r = Rules::default();
        assert_eq!(
            r.classify("Acme raises $20M Series B"),
            Some("funding_round")
        );
        assert_eq!(
            r.classify("Acme to acquire Beta for $1B"),
            Some("merger_acquisition")
        );
        assert_eq!(r.classify("Acme lays off 10% of staff"), Some("layoffs"));
        assert_eq!(r.classify("Acme cuts 200 jobs"), Some("layoffs"));
        assert_eq!(
            r.classify("Acme names Jane Doe CEO"),
            Some("leadership_change")
        );
        assert_eq!(
            r.classify("Acme unveils new AI assistant"),
            Some("product_launch")
        );
        assert_eq!(
            r.classify("Acme opens new office in Berlin"),
            Some("expansion")
        );
        assert_eq!(
            r.classify("Acme is hiring 500 engineers"),
            Some("hiring_surge")
        );
        assert_eq!(
            r.classify("Acme fined by EU regulator"),
            Some("regulatory_change")
        );
        assert_eq!(r.classify("Acme's quarterly results"), None);
        let custom =
            Rules::from_toml("[[rules]]\ntype = \"intent_surge\"\nphrases = [\"pricing page\"]\n")
                .unwrap();
        assert_eq!(
            custom.classify("Visits to the pricing page"),
            Some("intent_surge")
        );
    }

    #[test]
    fn rss_and_atom_become_items_deduped_into_triggers() {
        let rss = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>Tech Wire</title>
<item><title>Acme raises $20M Series B</title><link>https://news.example/a</link><guid>g1</guid>
<pubDate>Tue, 10 Mar 2026 09:00:00 GMT</pubDate><description>&lt;p&gt;The round was led by X.&lt;/p&gt;</description></item>
<item><title>Acme raises $20M Series B</title><link>https://news.example/a</link><guid>g1</guid>
<pubDate>Tue, 10 Mar 2026 09:00:00 GMT</pubDate></item>
<item><title>Weather today</title><guid>g2</guid><pubDate>Tue, 10 Mar 2026 09:00:00 GMT</pubDate></item>
</channel></rss>"#;
        let atom =
            r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">
<title>Biz Daily</title><id>urn:x</id><updated>2026-03-11T00:00:00Z</updated>
<entry><title>Société Générale names new chief executive</title><id>urn:e1</id>
<link href="https://biz.example/e1"/><updated>2026-03-11T08:00:00Z</updated></entry></feed>"#
                .as_bytes();
        let mut items = parse_feed(rss, "rss").unwrap();
        assert_eq!(items[0].source, "Tech Wire");
        assert_eq!(items[0].summary.trim(), "The round was led by X.");
        items.extend(parse_feed(atom, "atom").unwrap());
        let m = Matcher::new([("1", "Acme Corp", None), ("2", "Societe Generale SA", None)]);
        let rep = triggers(&items, &m, &Rules::default());
        assert_eq!(
            (rep.items, rep.duplicates, rep.matched, rep.classified),
            (4, 1, 2, 2)
        );
        assert_eq!(rep.triggers.len(), 2);
        assert_eq!(rep.triggers[0]["type"], "funding_round");
        assert_eq!(rep.triggers[0]["occurred_at"], "2026-03-10T09:00:00Z");
        assert_eq!(rep.triggers[0]["source"], "news: Tech Wire");
        assert_eq!(rep.triggers[1]["type"], "leadership_change");
        assert!(parse_feed(b"not a feed", "x").is_err());
    }
}
