//! Progress bars on stderr for long work; silent when stderr is not a terminal or with --quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct Bars {
    enabled: bool,
    current: Mutex<Option<(String, ProgressBar)>>,
}

impl Bars {
    pub fn new(quiet: bool) -> Bars {
        Bars {
            enabled: !quiet && std::io::stderr().is_terminal(),
            current: Mutex::new(None),
        }
    }

    /// Show `done/total` for stage `label` (bytes when reading files, accounts when assessing).
    pub fn update(&self, label: &str, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let mut cur = self.current.lock().expect("progress lock");
        if cur.as_ref().map(|(l, _)| l != label).unwrap_or(true) {
            if let Some((_, pb)) = cur.take() {
                pb.finish_and_clear();
            }
            let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let bytes = label.starts_with("reading");
            // No rate: a mapped file's blocks are handed out faster than they are read, so a
            // rate would be absurd (issue 14). An unknown total (0) shows a count, no bar.
            pb.set_style(
                ProgressStyle::with_template(if total == 0 {
                    "{msg:40} {human_pos}"
                } else if bytes {
                    "{msg:40} [{bar:30}] {bytes}/{total_bytes} eta {eta}"
                } else {
                    "{msg:40} [{bar:30}] {human_pos}/{human_len} eta {eta}"
                })
                .expect("template")
                .progress_chars("=> "),
            );
            pb.set_message(label.to_string());
            *cur = Some((label.to_string(), pb));
        }
        if let Some((_, pb)) = cur.as_ref() {
            if total > 0 {
                pb.set_length(total.max(done));
            }
            pb.set_position(done);
        }
    }

    pub fn finish(&self) {
        if let Some((_, pb)) = self.current.lock().expect("progress lock").take() {
            pb.finish_and_clear();
        }
    }
}
