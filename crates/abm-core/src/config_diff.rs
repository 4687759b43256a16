//! `abm config diff`: the rule changes between two configs, in words. Both configs are
//! compared as the engine reads them (defaults filled in), so a key written out with its
//! default value is no change, and a change of layout that gives the same rules is none.

use crate::config::{Config, Criterion};
use crate::scoring::format_score;
use toml::Value;

/// One line per change, in the config's order.
pub fn diff(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    criteria(&old.icp.criteria, &new.icp.criteria, &mut out);
    let (mut a, mut b) = (
        Value::try_from(old).expect("a config serializes"),
        Value::try_from(new).expect("a config serializes"),
    );
    // Criteria are described above, criterion by criterion.
    for v in [&mut a, &mut b] {
        if let Some(icp) = v.get_mut("icp").and_then(Value::as_table_mut) {
            icp.remove("criteria");
        }
    }
    walk("", &a, &b, &mut out);
    out
}

fn describe(c: &Criterion) -> String {
    match c {
        Criterion::In {
            values,
            points: crate::config::Points::Flat(points),
            ..
        } => {
            format!(
                "in [{}] for {} pts",
                values.join(", "),
                format_score(*points)
            )
        }
        Criterion::In {
            points: crate::config::Points::PerValue(map),
            ..
        } => {
            let v: Vec<String> = map
                .iter()
                .map(|(k, p)| format!("{k} {}", format_score(*p)))
                .collect();
            format!("graded [{}] pts", v.join(", "))
        }
        Criterion::Equals { value, points, .. } => {
            format!("= {value} for {} pts", format_score(*points))
        }
        Criterion::Contains { values, points, .. } => format!(
            "contains any of [{}] for {} pts",
            values.join(", "),
            format_score(*points)
        ),
        Criterion::Range {
            min, max, points, ..
        } => format!(
            "in range {}–{} for {} pts",
            min.map(format_score).unwrap_or_else(|| "…".into()),
            max.map(format_score).unwrap_or_else(|| "…".into()),
            format_score(*points)
        ),
        Criterion::Bands { bands, .. } => {
            let b: Vec<String> = bands
                .iter()
                .map(|b| {
                    format!(
                        "{}–{}: {}",
                        b.min.map(format_score).unwrap_or_else(|| "…".into()),
                        b.max.map(format_score).unwrap_or_else(|| "…".into()),
                        format_score(b.points)
                    )
                })
                .collect();
            format!("bands [{}]", b.join(", "))
        }
    }
}

/// Criteria matched by field (the first criterion on a field with the first, and so on).
fn criteria(old: &[Criterion], new: &[Criterion], out: &mut Vec<String>) {
    let mut used = vec![false; new.len()];
    for o in old {
        let m = new
            .iter()
            .enumerate()
            .find(|(i, n)| !used[*i] && n.field() == o.field());
        match m {
            Some((i, n)) => {
                used[i] = true;
                if n != o {
                    out.push(format!(
                        "ICP criterion on {}: {} → {}",
                        o.field(),
                        describe(o),
                        describe(n)
                    ));
                }
            }
            None => out.push(format!(
                "ICP criterion on {} removed (was {})",
                o.field(),
                describe(o)
            )),
        }
    }
    for (i, n) in new.iter().enumerate() {
        if !used[i] {
            out.push(format!(
                "ICP criterion on {} added: {}",
                n.field(),
                describe(n)
            ));
        }
    }
    let (po, pn): (f64, f64) = (
        old.iter().map(Criterion::possible).sum(),
        new.iter().map(Criterion::possible).sum(),
    );
    if po != pn {
        out.push(format!(
            "ICP points possible: {} → {} (every score is earned ÷ possible × 100)",
            format_score(po),
            format_score(pn)
        ));
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(|x| !x.is_table()) => {
            let items: Vec<String> = a.iter().map(show).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Float(f) => format_score(*f),
        other => other.to_string(),
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Table(x), Value::Table(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => walk(&join(k), va, vb, out),
                    None => out.push(format!("{}: {} removed", join(k), show(va))),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    out.push(format!("{}: {} added", join(k), show(vb)));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.iter().chain(y).all(|v| !v.is_table()) => {
            let added: Vec<String> = y.iter().filter(|v| !x.contains(v)).map(show).collect();
            let removed: Vec<String> = x.iter().filter(|v| !y.contains(v)).map(show).collect();
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("+ {}", added.join(", ")));
            }
            if !removed.is_empty() {
                parts.push(format!("- {}", removed.join(", ")));
            }
            if parts.is_empty() {
                parts.push(format!("reordered {} → {}", show(a), show(b)));
            }
            out.push(format!("{path}: {}", parts.join("; ")));
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}[{}]", i + 1);
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (Some(va), None) => out.push(format!("{p} removed: {}", inline(va))),
                    (None, Some(vb)) => out.push(format!("{p} added: {}", inline(vb))),
                    (None, None) => {}
                }
            }
        }
        _ => out.push(format!("{path}: {} → {}", show(a), show(b))),
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Table(t) => {
            let parts: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        other => show(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_rules_no_lines() {
        assert!(diff(&Config::default(), &Config::default()).is_empty());
    }

    #[test]
    fn changes_are_named() {
        let old = Config::default();
        let mut new = old.clone();
        new.icp.tiers.a = 75.0;
        new.icp.criteria[0] = Criterion::In {
            field: "industry".into(),
            values: vec!["software".into()],
            points: 20.0.into(),
        };
        new.engagement.high.push("webinar".into());
        new.engagement.window_days = 60;
        new.decision_table.pop();
        let lines = diff(&old, &new);
        let text = lines.join("\n");
        assert!(text.contains("icp.tiers.a: 80 → 75"), "{text}");
        assert!(
            text.contains("ICP criterion on industry: graded [banking 30, ")
                && text.contains("→ in [software] for 20 pts"),
            "{text}"
        );
        assert!(text.contains("ICP points possible: 100 → 90"), "{text}");
        assert!(text.contains("engagement.high: + webinar"), "{text}");
        assert!(text.contains("engagement.window_days: 90 → 60"), "{text}");
        assert!(text.contains("decision_table[7] removed"), "{text}");
    }
}
