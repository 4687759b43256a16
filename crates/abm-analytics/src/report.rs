//! report.md and report.html of `abm analyze`: the figures of analytics.json read the way a
//! sales leader would, the HTML one self-contained file with inline SVG charts (no script, no
//! network).

use crate::analysis::{Analytics, SegmentRow};
use crate::Row;
use std::fmt::Write;

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn ci(v: Option<[f64; 2]>) -> String {
    v.map_or("–".into(), |[a, b]| {
        format!("{:.1}–{:.1}%", a * 100.0, b * 100.0)
    })
}

fn money(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) => {
            let r = v.round() as i64;
            let s = r.abs().to_string();
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            if r < 0 {
                format!("-{out}")
            } else {
                out
            }
        }
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.decimals$}"))
}

/// Markdown-safe cell text.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn row_table(o: &mut String, rows: &[Row]) {
    let _ = writeln!(
        o,
        "| key | accounts | customers | won | lost | open | win rate | 95% interval | won revenue | share | avg won deal | median cycle (days) | open pipeline |"
    );
    let _ = writeln!(
        o,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.key),
            r.accounts,
            r.customers,
            r.won,
            r.lost,
            r.open,
            pct(r.win_rate),
            ci(r.win_rate_ci),
            money(r.won_revenue),
            pct(r.revenue_share),
            money(r.avg_won_deal),
            num(r.median_cycle_days, 0),
            money(r.open_pipeline)
        );
    }
}

/// The user's segments and tiers/clusters, then at most 20 micro-segments by revenue.
fn shown_segments(a: &Analytics) -> Vec<&SegmentRow> {
    use crate::GroupKind;
    let mut main: Vec<&SegmentRow> = a
        .segments
        .iter()
        .filter(|s| s.kind != GroupKind::MicroSegment)
        .collect();
    let mut micro: Vec<&SegmentRow> = a
        .segments
        .iter()
        .filter(|s| s.kind == GroupKind::MicroSegment)
        .collect();
    micro.sort_by(|x, y| {
        y.row
            .won_revenue
            .unwrap_or(0.0)
            .total_cmp(&x.row.won_revenue.unwrap_or(0.0))
            .then(x.row.key.cmp(&y.row.key))
    });
    main.extend(micro.into_iter().take(20));
    main
}

pub fn markdown(a: &Analytics) -> String {
    let mut o = String::new();
    let t = &a.total.row;
    let _ = writeln!(o, "# Segment analytics\n");
    let _ = writeln!(
        o,
        "Period {} to {} (clusters and tiers as of {}).\n",
        a.period.from, a.period.to, a.period.as_of
    );
    let _ = writeln!(
        o,
        "**In short:** {} accounts, {} customers. {} deals won and {} lost in the period: win rate {} (95% interval {}). Won revenue {}, average won deal {}, median sales cycle {} days. Open pipeline at the period's end: {} in {} deals.\n",
        t.accounts,
        t.customers,
        t.won,
        t.lost,
        pct(t.win_rate),
        ci(t.win_rate_ci),
        money(t.won_revenue),
        money(t.avg_won_deal),
        num(t.median_cycle_days, 0),
        money(t.open_pipeline),
        t.open
    );
    let _ = writeln!(o, "## By cluster\n");
    row_table(&mut o, &a.by_cluster);
    let _ = writeln!(o, "\n## By ICP tier\n");
    row_table(&mut o, &a.by_tier);
    let _ = writeln!(o, "\n## Segments: value and recommendation\n");
    let _ = writeln!(
        o,
        "| segment | accounts | win rate | 95% interval | won revenue | share | growth | CLV | CAC | LTV:CAC | payback (months) | recommendation | because |"
    );
    let _ = writeln!(
        o,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    for s in shown_segments(a) {
        let r = &s.row;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} |",
            cell(&r.key),
            r.accounts,
            pct(r.win_rate),
            ci(r.win_rate_ci),
            money(r.won_revenue),
            pct(r.revenue_share),
            pct(s.won_revenue_growth),
            money(s.clv),
            money(s.cac),
            num(s.ltv_cac, 2),
            num(s.payback_months, 1),
            s.recommendation.as_str(),
            cell(&s.reasons.join("; "))
        );
    }
    let _ = writeln!(o, "\n## Whitespace\n");
    let _ = writeln!(
        o,
        "Accounts with no open deal and no win, sized by their segment's win rate × average won deal.\n"
    );
    let _ = writeln!(
        o,
        "| segment | accounts | estimated value | best-scoring accounts |"
    );
    let _ = writeln!(o, "|---|---:|---:|---|");
    let mut ws: Vec<_> = a.whitespace.iter().filter(|w| w.accounts > 0).collect();
    ws.sort_by(|x, y| {
        y.estimated_value
            .unwrap_or(-1.0)
            .total_cmp(&x.estimated_value.unwrap_or(-1.0))
            .then(x.key.cmp(&y.key))
    });
    for w in ws.iter().take(25) {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            cell(&w.key),
            w.accounts,
            money(w.estimated_value),
            cell(&w.top_accounts.join(", "))
        );
    }
    if let Some(cs) = &a.cross_sell {
        let _ = writeln!(o, "\n## Cross-sell\n");
        let _ = writeln!(
            o,
            "{} customers hold a product. Pairs held together (lift > 1: more than chance), and who holds one without the other.\n",
            cs.customers
        );
        if cs.pairs.is_empty() {
            let _ = writeln!(o, "No customer holds two products.");
        } else {
            let _ = writeln!(
                o,
                "| a | b | both | a without b | b without a | lift | accounts with a, without b |"
            );
            let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---|");
        }
        for p in cs.pairs.iter().take(15) {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {:.2} | {} |",
                cell(&p.a),
                cell(&p.b),
                p.both,
                p.a_without_b,
                p.b_without_a,
                p.lift,
                cell(&p.accounts_a_without_b.join(", "))
            );
        }
    }
    let _ = writeln!(o, "\n## Forecast\n");
    if a.forecast.by_month.is_empty() {
        let _ = writeln!(
            o,
            "No open deals to forecast (or no won deal to time them by)."
        );
    } else {
        let _ = writeln!(
            o,
            "| group | expected close | open deals | pipeline | expected | low | high |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|");
        for m in &a.forecast.by_month {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&m.key),
                m.month,
                m.open_deals,
                money(m.pipeline),
                money(m.expected),
                money(m.low),
                money(m.high)
            );
        }
    }
    capacity_md(&mut o, a);
    buying_md(&mut o, a);
    migration_md(&mut o, a);
    for n in a.forecast.notes.iter().chain(&a.notes) {
        let _ = writeln!(o, "\n- {n}");
    }
    o
}

fn capacity_md(o: &mut String, a: &Analytics) {
    let Some(c) = &a.forecast.capacity else {
        return;
    };
    let _ = writeln!(o, "\n### Capacity over the next {} days\n", c.horizon_days);
    match &c.observed {
        Some(f) => {
            let _ = writeln!(
                o,
                "At the movement rates observed from {} to {} ({} movements over {:.0} days).\n",
                f.from, f.to, f.movements, f.days
            );
        }
        None => {
            let _ = writeln!(o, "No recorded movements: current counts only.\n");
        }
    }
    let _ = writeln!(
        o,
        "| cluster | accounts | range | in / month | out / month | projected | advice |"
    );
    let _ = writeln!(o, "|---|---:|---|---:|---:|---:|---|");
    for k in &c.clusters {
        let _ = writeln!(
            o,
            "| {} | {} | {}–{} | {} | {} | {} | {} |",
            k.cluster,
            k.accounts,
            k.min,
            k.max.map_or("∞".to_string(), |m| m.to_string()),
            num(k.inflow_per_month, 1),
            num(k.outflow_per_month, 1),
            num(k.projected, 0),
            cell(&k.advice)
        );
    }
}

fn buying_md(o: &mut String, a: &Analytics) {
    let _ = writeln!(o, "\n## Buying pattern\n");
    let _ = writeln!(
        o,
        "Per won deal of the period: distinct contacts engaged and meetings from the buying window before the deal was created to the win (medians).\n"
    );
    let _ = writeln!(o, "| segment | wins | engaged contacts | meetings |");
    let _ = writeln!(o, "|---|---:|---:|---:|");
    for s in std::iter::once(&a.total).chain(shown_segments(a)) {
        let b = &s.buying_pattern;
        if b.wins == 0 && s.kind != crate::GroupKind::All {
            continue;
        }
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            cell(&s.row.key),
            b.wins,
            num(b.median_engaged_contacts, 1),
            num(b.median_meetings, 1)
        );
    }
    let stages = &a.total.buying_pattern.stage_days;
    if !stages.is_empty() {
        let _ = writeln!(
            o,
            "\nDeals open at the period's end, by stage: median days in the stage so far.\n"
        );
        let _ = writeln!(o, "| stage | open deals | median days |");
        let _ = writeln!(o, "|---|---:|---:|");
        for st in stages {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                cell(&st.stage),
                st.open_deals,
                num(st.median_days, 0)
            );
        }
    }
    let with_history: Vec<(&SegmentRow, &Vec<crate::perf::WonStageDays>)> =
        std::iter::once(&a.total)
            .chain(shown_segments(a))
            .filter_map(|s| Some((s, s.buying_pattern.stage_days_before_win.as_ref()?)))
            .collect();
    if with_history.is_empty() {
        let _ = writeln!(
            o,
            "\nTypical stage durations: no won deal of the period has a stage history."
        );
    } else {
        let _ = writeln!(
            o,
            "\nTypical stage durations: the period's won deals with a stage history, the median days spent in each stage before the win (won deals through that stage in brackets).\n"
        );
        let _ = writeln!(o, "| segment | stages before the win |");
        let _ = writeln!(o, "|---|---|");
        for (s, stages) in with_history {
            let text: Vec<String> = stages
                .iter()
                .map(|st| {
                    format!(
                        "{} {} d ({})",
                        st.stage,
                        num(st.median_days, 0),
                        st.won_deals
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} |",
                cell(&s.row.key),
                cell(&if text.is_empty() {
                    "–".to_string()
                } else {
                    text.join(" → ")
                })
            );
        }
    }
}

fn migration_md(o: &mut String, a: &Analytics) {
    let Some(m) = &a.migration else {
        return;
    };
    let _ = writeln!(
        o,
        "\n## Migration from run {} ({}) to run {} ({})\n",
        m.from.run, m.from.as_of, m.to.run, m.to.as_of
    );
    for (title, x) in [
        ("segment", &m.by_segment),
        ("cluster", &m.by_cluster),
        ("tier", &m.by_tier),
    ] {
        let _ = writeln!(
            o,
            "By {title}: {} of {} accounts moved ({}).\n",
            x.moved,
            x.accounts,
            pct(x.moved_share)
        );
        let _ = writeln!(o, "| from | to | accounts | share of from |");
        let _ = writeln!(o, "|---|---|---:|---:|");
        for c in &x.cells {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                cell(&c.from),
                cell(&c.to),
                c.count,
                pct(Some(c.share))
            );
        }
        let _ = writeln!(o);
    }
    if !m.lifecycle.is_empty() {
        let _ = writeln!(
            o,
            "Lifecycle: each segment's accounts at run {}, followed run by run (customers and the cluster they were in).\n",
            m.from.run
        );
        let _ = writeln!(
            o,
            "| cohort | accounts | run | as of | customers | clusters |"
        );
        let _ = writeln!(o, "|---|---:|---:|---|---:|---|");
        for c in &m.lifecycle {
            for r in &c.runs {
                let clusters: Vec<String> = r
                    .by_cluster
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} ({}) | {} |",
                    cell(&c.segment),
                    c.accounts,
                    r.run,
                    r.as_of,
                    r.customers,
                    pct(r.customer_share),
                    cell(&clusters.join(", "))
                );
            }
        }
    }
    for n in &m.notes {
        let _ = writeln!(o, "\n- {n}");
    }
}

/// A chart label of at most 34 characters.
fn short(s: &str) -> String {
    if s.chars().count() <= 34 {
        s.to_string()
    } else {
        s.chars().take(33).collect::<String>() + "…"
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars: label, value (none: no bar, "–").
fn bars(
    title: &str,
    items: &[(String, Option<f64>)],
    fmt: &dyn Fn(Option<f64>) -> String,
) -> String {
    let max = items
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let h = 22 * items.len() + 30;
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg class=\"chart\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"{h}\" viewBox=\"0 0 720 {h}\">",
        esc(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 10 + i * 22;
        let w = v.map_or(0.0, |v| 360.0 * v.max(0.0) / max);
        let _ = write!(
            s,
            "<text x=\"250\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text><rect x=\"260\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" fill=\"#3b6ea5\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 12,
            esc(&short(label)),
            265.0 + w,
            y + 12,
            esc(&fmt(*v))
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// Win rates with their 95% intervals (dot and whisker on a 0–100% axis).
fn win_rates(rows: &[&SegmentRow]) -> String {
    let h = 22 * rows.len() + 40;
    let mut s = format!(
        "<figure><figcaption>Win rate with its 95% interval</figcaption><svg class=\"chart\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"{h}\" viewBox=\"0 0 720 {h}\">"
    );
    let x = |v: f64| 260.0 + 420.0 * v;
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"5\" y2=\"{1}\" stroke=\"#ddd\"/><text x=\"{0:.1}\" y=\"{2}\" font-size=\"10\" text-anchor=\"middle\">{3:.0}%</text>",
            x(tick),
            h - 25,
            h - 10,
            tick * 100.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = 15 + i * 22;
        let _ = write!(
            s,
            "<text x=\"250\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text>",
            y + 4,
            esc(&short(&r.row.key))
        );
        match (r.row.win_rate, r.row.win_rate_ci) {
            (Some(w), Some([lo, hi])) => {
                let _ = write!(
                    s,
                    "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#333\" stroke-width=\"2\"/><circle cx=\"{:.1}\" cy=\"{y}\" r=\"4\" fill=\"#c0392b\"/>",
                    x(lo),
                    x(hi),
                    x(w)
                );
            }
            _ => {
                let _ = write!(
                    s,
                    "<text x=\"265\" y=\"{}\" font-size=\"11\" fill=\"#888\">no closed deals</text>",
                    y + 4
                );
            }
        }
    }
    s.push_str("</svg></figure>\n");
    s
}

/// The prioritization quadrant: share of won revenue (position) against win rate relative to
/// all accounts (attractiveness).
fn quadrant(rows: &[&SegmentRow]) -> String {
    let pts: Vec<(&SegmentRow, f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((*r, r.position?, r.attractiveness?)))
        .collect();
    let max_x = pts.iter().map(|p| p.1).fold(0.0f64, f64::max).max(0.01);
    // The vertical axis spans the data and ×1 (all accounts), with a margin.
    let lo_y = pts.iter().map(|p| p.2).fold(1.0f64, f64::min) * 0.95;
    let hi_y = pts.iter().map(|p| p.2).fold(1.0f64, f64::max) * 1.05;
    let (w, h) = (720.0, 420.0);
    let x = |v: f64| 60.0 + (w - 100.0) * v / max_x;
    let y = |v: f64| h - 40.0 - (h - 70.0) * (v - lo_y) / (hi_y - lo_y).max(1e-9);
    let mut s = format!(
        "<figure><figcaption>Prioritization: share of won revenue (→) vs win rate relative to all accounts (↑)</figcaption><svg class=\"chart\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
    );
    let _ = write!(
        s,
        "<line x1=\"60\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"4\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">×1 (all accounts)</text>",
        w - 40.0,
        y(1.0),
        y(1.0),
        w - 140.0,
        y(1.0) - 4.0
    );
    let _ = write!(
        s,
        "<line x1=\"60\" x2=\"60\" y1=\"20\" y2=\"{0:.1}\" stroke=\"#333\"/><line x1=\"60\" x2=\"{1:.1}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#333\"/><text x=\"{1:.1}\" y=\"{2:.1}\" font-size=\"10\" text-anchor=\"end\">{3:.0}% of revenue</text>",
        h - 40.0,
        w - 40.0,
        h - 25.0,
        max_x * 100.0
    );
    for v in [lo_y, hi_y] {
        let _ = write!(
            s,
            "<text x=\"55\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">×{v:.2}</text>",
            y(v) + 3.0
        );
    }
    for (r, px, py) in pts {
        let color = match r.recommendation {
            crate::analysis::Recommendation::Grow => "#27ae60",
            crate::analysis::Recommendation::Maintain => "#2980b9",
            crate::analysis::Recommendation::Enter => "#f39c12",
            crate::analysis::Recommendation::Exit => "#c0392b",
        };
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
            x(px),
            y(py),
            x(px) + 7.0,
            y(py) + 3.0,
            esc(&short(&r.row.key))
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// The funnel of all accounts: accounts, with a deal open at the end, customers, wins.
fn funnel(t: &Row) -> String {
    bars(
        "Funnel (all accounts)",
        &[
            ("accounts".into(), Some(t.accounts as f64)),
            ("customers".into(), Some(t.customers as f64)),
            ("closed deals".into(), Some((t.won + t.lost) as f64)),
            ("won deals".into(), Some(t.won as f64)),
            ("open deals at the end".into(), Some(t.open as f64)),
        ],
        &|v| money(v),
    )
}

/// The migration heat maps (from → to, by segment and by cluster): need two recorded runs.
fn migration(a: &Analytics) -> String {
    match &a.migration {
        None => "<figure><figcaption>Migration between segments</figcaption><svg class=\"chart\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"40\" viewBox=\"0 0 720 40\"><text x=\"10\" y=\"25\" font-size=\"12\" fill=\"#888\">Migration needs two recorded runs (`abm analyze` on the database); not available on files.</text></svg></figure>\n".into(),
        Some(m) => {
            let title = |by: &str| {
                format!(
                    "Migration by {by}: run {} → run {} (share of each row)",
                    m.from.run, m.to.run
                )
            };
            heat_map(&title("segment"), &m.by_segment) + &heat_map(&title("cluster"), &m.by_cluster)
        }
    }
}

/// One from → to matrix as a heat map: rows are `from`, columns `to`, each cell shaded by its
/// share of the row and labelled with its count.
fn heat_map(title: &str, m: &crate::migration::Matrix) -> String {
    let mut keys: Vec<&str> = Vec::new();
    for c in &m.cells {
        for k in [c.from.as_str(), c.to.as_str()] {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys.sort_unstable();
    let keys: Vec<&str> = keys.into_iter().take(16).collect();
    let (left, top, size) = (230usize, 150usize, 44usize);
    let (w, h) = (left + size * keys.len() + 10, top + size * keys.len() + 10);
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg class=\"chart\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        esc(title)
    );
    for (i, k) in keys.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            left - 6,
            top + i * size + size / 2 + 4,
            esc(&short(k))
        );
        let x = left + i * size + size / 2;
        let _ = write!(
            s,
            "<text x=\"{x}\" y=\"{}\" font-size=\"11\" transform=\"rotate(-45 {x} {})\">{}</text>",
            top - 6,
            top - 6,
            esc(&short(k))
        );
    }
    for c in &m.cells {
        let (Some(i), Some(j)) = (
            keys.iter().position(|k| *k == c.from),
            keys.iter().position(|k| *k == c.to),
        ) else {
            continue;
        };
        let alpha = 0.1 + 0.9 * c.share.clamp(0.0, 1.0);
        let (x, y) = (left + j * size, top + i * size);
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"#3b6ea5\" fill-opacity=\"{alpha:.3}\"><title>{} → {}: {} ({:.1}%)</title></rect><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
            size - 2,
            size - 2,
            esc(&c.from),
            esc(&c.to),
            c.count,
            c.share * 100.0,
            x + size / 2,
            y + size / 2 + 4,
            c.count
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

pub fn html(a: &Analytics) -> String {
    let shown = shown_segments(a);
    let mut o = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Segment analytics</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}\
         table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}\
         td{vertical-align:top}td.n{text-align:right}td.why{font-size:12px;min-width:22em}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}</style>\
         </head><body>\n",
    );
    let _ = writeln!(
        o,
        "<h1>Segment analytics</h1><p>Period {} to {} (clusters and tiers as of {}).</p>",
        esc(&a.period.from),
        esc(&a.period.to),
        esc(&a.period.as_of)
    );
    o.push_str(&funnel(&a.total.row));
    let rev: Vec<(String, Option<f64>)> = shown
        .iter()
        .map(|s| (s.row.key.clone(), s.row.won_revenue))
        .collect();
    o.push_str(&bars("Won revenue by segment", &rev, &|v| money(v)));
    o.push_str(&win_rates(&shown));
    o.push_str(&migration(a));
    o.push_str(&quadrant(&shown));
    o.push_str("<h2>Segments</h2><table><tr><th>segment</th><th>accounts</th><th>customers</th><th>won</th><th>lost</th><th>open</th><th>win rate</th><th>95% interval</th><th>won revenue</th><th>share</th><th>median cycle</th><th>CLV</th><th>CAC</th><th>LTV:CAC</th><th>recommendation</th><th>because</th></tr>\n");
    for s in &shown {
        let r = &s.row;
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td class=why>{}</td></tr>",
            esc(&r.key),
            r.accounts,
            r.customers,
            r.won,
            r.lost,
            r.open,
            pct(r.win_rate),
            ci(r.win_rate_ci),
            money(r.won_revenue),
            pct(r.revenue_share),
            num(r.median_cycle_days, 0),
            money(s.clv),
            money(s.cac),
            num(s.ltv_cac, 2),
            s.recommendation.as_str(),
            esc(&s.reasons.join("; "))
        );
    }
    o.push_str("</table>\n");
    // The capacity guidance, the buying pattern and the lifecycle as their Markdown tables
    // say them (one wording for both reports).
    let sections: [fn(&mut String, &Analytics); 3] = [capacity_md, buying_md, migration_md];
    for section in sections {
        let mut md = String::new();
        section(&mut md, a);
        o.push_str(&md_tables_to_html(&md));
    }
    o.push_str("<ul>");
    for n in a.forecast.notes.iter().chain(&a.notes) {
        let _ = write!(o, "<li>{}</li>", esc(n));
    }
    o.push_str("</ul>\n</body></html>\n");
    o
}

/// The Markdown this module writes (headings, paragraphs, pipe tables, `- ` notes) as HTML.
fn md_tables_to_html(md: &str) -> String {
    let mut o = String::new();
    let mut in_table = false;
    for line in md.lines() {
        let t = line.trim();
        if t.starts_with('|') {
            let cells: Vec<String> = t
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().replace("\\|", "|"))
                .collect();
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':')))
            {
                continue;
            }
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                o.push_str("<table>");
                in_table = true;
            }
            o.push_str("<tr>");
            for c in cells {
                let _ = write!(o, "<{tag}>{}</{tag}>", esc(&c));
            }
            o.push_str("</tr>");
            continue;
        }
        if in_table {
            o.push_str("</table>\n");
            in_table = false;
        }
        if t.is_empty() {
            continue;
        }
        if let Some(h) = t.strip_prefix("### ") {
            let _ = write!(o, "<h3>{}</h3>", esc(h));
        } else if let Some(h) = t.strip_prefix("## ") {
            let _ = write!(o, "<h2>{}</h2>", esc(h));
        } else if let Some(n) = t.strip_prefix("- ") {
            let _ = write!(o, "<p class=note>{}</p>", esc(n));
        } else {
            let _ = write!(o, "<p>{}</p>", esc(t));
        }
    }
    if in_table {
        o.push_str("</table>\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_a_person_writes_them() {
        assert_eq!(money(Some(1234567.4)), "1,234,567");
        assert_eq!(money(Some(999.0)), "999");
        assert_eq!(money(Some(-1000.0)), "-1,000");
        assert_eq!(money(None), "–");
        assert_eq!(pct(Some(0.1234)), "12.3%");
        assert_eq!(ci(Some([0.1, 0.25])), "10.0–25.0%");
        assert_eq!(esc("<a&\">"), "&lt;a&amp;&quot;&gt;");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
