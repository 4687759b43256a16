//! Inline SVG charts drawn on the server (no script, no styles inline: classes from the
//! stylesheet, geometry as attributes). Each chart has a text alternative beside it.

use abm_core::{Cluster, Instant};
use maud::{html, Markup};

/// One funnel stage: a cluster's count against its capacity range.
pub(crate) struct Stage {
    pub(crate) cluster: Cluster,
    pub(crate) count: i64,
    /// The recommended range (`None`: no range, Monitor Only).
    pub(crate) range: Option<(i64, i64)>,
}

impl Stage {
    /// `over`, `under` or `ok`.
    pub(crate) fn status(&self) -> &'static str {
        match self.range {
            Some((_, max)) if self.count > max => "over",
            Some((min, _)) if self.count < min => "under",
            _ => "ok",
        }
    }
}

const W: f64 = 640.0;

/// Horizontal bars, widest first, each with its capacity range as a band behind it.
pub(crate) fn funnel(stages: &[Stage]) -> Markup {
    let label_w = 150.0;
    let bar_w = W - label_w - 150.0;
    let row = 46.0;
    let scale = stages
        .iter()
        .map(|s| s.count.max(s.range.map_or(0, |r| r.1)))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |n: i64| label_w + bar_w * (n as f64 / scale);
    let h = row * stages.len() as f64 + 8.0;
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (h) } role="img"
            aria-labelledby="funnel-title" {
            title id="funnel-title" { "Accounts per cluster against the capacity ranges" }
            @for (i, s) in stages.iter().enumerate() {
                @let y = 4.0 + row * i as f64;
                text.label x="0" y=(y + 24.0) { (s.cluster.label()) }
                @if let Some((min, max)) = s.range {
                    rect.range x=(x(min)) y=(y + 2.0) width=((x(max) - x(min)).max(1.0))
                        height=(row - 10.0) {
                        title { "recommended " (min) "–" (max) }
                    }
                }
                rect class={ "bar " (s.status()) } x=(label_w) y=(y + 8.0)
                    width=((x(s.count) - label_w).max(1.0)) height=(row - 22.0) {
                    title { (s.cluster.label()) ": " (s.count) }
                }
                text.value x=(x(s.count.max(s.range.map_or(0, |r| r.1))) + 6.0) y=(y + 24.0) {
                    (super::layout::num(s.count))
                    @match s.status() {
                        "over" => { " · over" }
                        "under" => { " · under" }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// One run's movements.
pub(crate) struct RunMoves {
    pub(crate) run: i64,
    pub(crate) as_of: String,
    pub(crate) promotions: i64,
    pub(crate) demotions: i64,
}

/// Promotions up, demotions down, one pair of bars per run (oldest left).
pub(crate) fn movements(runs: &[RunMoves]) -> Markup {
    let h = 220.0;
    let mid = 100.0;
    let left = 40.0;
    let top = runs
        .iter()
        .map(|r| r.promotions.max(r.demotions))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let step = (W - left - 10.0) / runs.len().max(1) as f64;
    let bw = (step * 0.35).clamp(2.0, 24.0);
    let y = |n: i64| 90.0 * n as f64 / top;
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (h) } role="img" aria-labelledby="moves-title" {
            title id="moves-title" { "Promotions (up) and demotions (down) per run" }
            line.axis x1=(left) x2=(W - 10.0) y1=(mid) y2=(mid) {}
            text.tick x="0" y="16" { (top as i64) }
            text.tick x="0" y=(mid + 4.0) { "0" }
            @for (i, r) in runs.iter().enumerate() {
                @let cx = left + step * i as f64 + step / 2.0;
                rect.up x=(cx - bw) y=(mid - y(r.promotions)) width=(bw) height=(y(r.promotions)) {
                    title { "run " (r.run) " (" (r.as_of) "): " (r.promotions) " promotions" }
                }
                rect.down x=(cx) y=(mid) width=(bw) height=(y(r.demotions)) {
                    title { "run " (r.run) " (" (r.as_of) "): " (r.demotions) " demotions" }
                }
                @if runs.len() <= 16 || i % (runs.len() / 8).max(1) == 0 {
                    text.tick x=(cx) y=(h - 6.0) text-anchor="middle" { "#" (r.run) }
                }
            }
        }
    }
}

/// One event on the timeline.
pub(crate) struct Dot {
    pub(crate) at: Instant,
    pub(crate) kind: String,
    /// `counted`, `ignored` or `signal`.
    pub(crate) class: &'static str,
    pub(crate) label: String,
}

/// Events by type over time, the engagement window `[from, as_of]` shaded.
pub(crate) fn timeline(dots: &[Dot], from: Instant, as_of: Instant) -> Markup {
    let mut kinds: Vec<&str> = dots.iter().map(|d| d.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let left = 130.0;
    let right = W - 10.0;
    let row = 22.0;
    let start = dots
        .iter()
        .map(|d| d.at.0)
        .min()
        .unwrap_or(from.0)
        .min(from.0);
    let end = dots
        .iter()
        .map(|d| d.at.0)
        .max()
        .unwrap_or(as_of.0)
        .max(as_of.0);
    let span = (end - start).max(1) as f64;
    let x = |t: i64| left + (right - left) * ((t - start) as f64 / span);
    let h = row * kinds.len().max(1) as f64 + 30.0;
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (h) } role="img" aria-labelledby="tl-title" {
            title id="tl-title" { "Engagement events over time; the shaded band is the window that counts" }
            rect.window x=(x(from.0)) y="0" width=((x(as_of.0) - x(from.0)).max(1.0)) height=(h - 22.0) {
                title { "window: " (from) " to " (as_of) }
            }
            line.asof x1=(x(as_of.0)) x2=(x(as_of.0)) y1="0" y2=(h - 22.0) {}
            @for (i, k) in kinds.iter().enumerate() {
                text.label x="0" y=(row * i as f64 + 15.0) { (k) }
            }
            @for d in dots {
                @let i = kinds.iter().position(|k| *k == d.kind).unwrap_or(0);
                circle class=(d.class) cx=(x(d.at.0)) cy=(row * i as f64 + 11.0) r="5" {
                    title { (d.label) }
                }
            }
            text.tick x=(left) y=(h - 6.0) { (date_of(Instant(start))) }
            text.tick x=(right) y=(h - 6.0) text-anchor="end" { (date_of(Instant(end))) }
        }
    }
}

fn date_of(t: Instant) -> String {
    let s = t.to_string();
    s.get(..10).unwrap_or(&s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_say_over_and_under() {
        let s = |count, range| Stage {
            cluster: Cluster::ActiveFocus,
            count,
            range,
        };
        assert_eq!(s(10, Some((1, 5))).status(), "over");
        assert_eq!(s(0, Some((1, 5))).status(), "under");
        assert_eq!(s(3, Some((1, 5))).status(), "ok");
        assert_eq!(s(3, None).status(), "ok");
        let svg = funnel(&[s(10, Some((1, 5)))]).into_string();
        assert!(
            svg.contains("bar over") && svg.contains("10 · over"),
            "{svg}"
        );
    }

    #[test]
    fn timeline_places_the_window() {
        let d = Dot {
            at: Instant(5_000_000),
            kind: "meeting".into(),
            class: "counted",
            label: "meeting".into(),
        };
        let svg = timeline(&[d], Instant(0), Instant(10_000_000)).into_string();
        assert!(svg.contains("class=\"window\""), "{svg}");
        assert!(svg.contains("<circle class=\"counted\""), "{svg}");
    }
}
