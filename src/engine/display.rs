//! What a run shows while it works: on a terminal an overall bar naming the instances running
//! now, with an ETA from the durations their previous runs recorded (stage log lines and stage
//! bars go through the same display so they never tear it); plain lines otherwise.

use std::io::IsTerminal;
use std::time::Instant;

/// The run's display.
pub(crate) struct Display {
    bar: Option<(indicatif::MultiProgress, indicatif::ProgressBar)>,
    /// Running instances: (index, id, when it started), in start order.
    running: Vec<(usize, String, Instant)>,
    /// Expected seconds of each instance that will compute (its previous run's), and whether it
    /// is still to finish.
    expected: Vec<Option<f64>>,
    pending: Vec<bool>,
    jobs: usize,
}

/// An instance still to finish, for the ETA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Work {
    /// Its previous run's duration, if known.
    pub expected: Option<f64>,
    /// Seconds since it started, if it runs.
    pub elapsed: Option<f64>,
}

/// Seconds left, spread over at most `jobs` at once, and how many instances have no previous
/// duration (the ETA is then a lower bound); None when nothing left has a known duration.
pub(crate) fn eta(left: &[Work], jobs: usize) -> Option<(f64, usize)> {
    let known: Vec<f64> = left
        .iter()
        .filter_map(|w| w.expected.map(|e| (e - w.elapsed.unwrap_or(0.0)).max(0.0)))
        .collect();
    if known.is_empty() {
        return None;
    }
    let unknown = left.len() - known.len();
    let width = jobs.clamp(1, left.len().max(1)) as f64;
    Some((known.iter().sum::<f64>() / width, unknown))
}

/// `42s`, `3m05s`, `1h02m`.
pub(crate) fn short_duration(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The bar's message: what runs now (the first three, then how many more) and the ETA.
pub(crate) fn message(running: &[&str], eta: Option<(f64, usize)>) -> String {
    let mut s = match running {
        [] => String::new(),
        [a, b, c, rest @ ..] if !rest.is_empty() => {
            format!("running {a}, {b}, {c} (+{} more)", rest.len())
        }
        v => format!("running {}", v.join(", ")),
    };
    if let Some((secs, unknown)) = eta {
        let sep = if s.is_empty() { "" } else { " · " };
        let bound = if unknown > 0 { "≥ " } else { "" };
        s.push_str(&format!("{sep}ETA {bound}{}", short_duration(secs)));
    }
    s
}

impl Display {
    /// A display for `total` instances; `expected[i]`: for each instance that will compute,
    /// its previous run's duration if known (None for the others).
    pub fn new(total: u64, expected: Vec<Option<Option<f64>>>, jobs: usize) -> Display {
        let bar = (std::io::stderr().is_terminal() && total > 0).then(|| {
            let m = indicatif::MultiProgress::new();
            let b = m.add(indicatif::ProgressBar::new(total));
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} stages {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            crate::progress::set_multi_progress(Some(m.clone()));
            (m, b)
        });
        let pending = expected.iter().map(Option::is_some).collect();
        Display {
            bar,
            running: Vec::new(),
            expected: expected.into_iter().map(Option::flatten).collect(),
            pending,
            jobs,
        }
    }

    /// Whether a bar is shown (only then is an ETA worth computing).
    pub fn is_terminal() -> bool {
        std::io::stderr().is_terminal()
    }

    /// One line above the bar (or on stderr).
    pub fn line(&self, s: String) {
        match &self.bar {
            Some((m, _)) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    /// An instance started.
    pub fn started(&mut self, i: usize, id: &str) {
        self.running.push((i, id.to_string(), Instant::now()));
        self.refresh();
    }

    /// An instance ended (or was skipped).
    pub fn ended(&mut self, i: usize) {
        self.running.retain(|(j, _, _)| *j != i);
        if let Some(p) = self.pending.get_mut(i) {
            *p = false;
        }
        if let Some((_, b)) = &self.bar {
            b.inc(1);
        }
        self.refresh();
    }

    fn refresh(&self) {
        let Some((_, b)) = &self.bar else { return };
        let left: Vec<Work> = (0..self.expected.len())
            .filter(|&i| self.pending[i])
            .map(|i| Work {
                expected: self.expected[i],
                elapsed: self
                    .running
                    .iter()
                    .find(|(j, _, _)| *j == i)
                    .map(|(_, _, t)| t.elapsed().as_secs_f64()),
            })
            .collect();
        let ids: Vec<&str> = self.running.iter().map(|(_, id, _)| id.as_str()).collect();
        b.set_message(message(&ids, eta(&left, self.jobs)));
    }

    pub fn finish(&self) {
        if let Some((_, b)) = &self.bar {
            b.finish_and_clear();
            crate::progress::set_multi_progress(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_names_what_runs_and_the_time_left() {
        assert_eq!(message(&["train@epoch=3"], None), "running train@epoch=3");
        assert_eq!(
            message(&["a", "b", "c", "d", "e"], Some((80.0, 0))),
            "running a, b, c (+2 more) · ETA 1m20s"
        );
        assert_eq!(message(&[], Some((5.0, 2))), "ETA ≥ 5s");
        let w = |e: Option<f64>, el: Option<f64>| Work {
            expected: e,
            elapsed: el,
        };
        // 30 s left of a running 40-s stage, 20 s of a waiting one, over two jobs.
        assert_eq!(
            eta(&[w(Some(40.0), Some(10.0)), w(Some(20.0), None)], 2),
            Some((25.0, 0))
        );
        // A stage past its expected time counts as nearly done; unknown ones are counted.
        assert_eq!(
            eta(&[w(Some(5.0), Some(9.0)), w(None, None)], 1),
            Some((0.0, 1))
        );
        assert_eq!(eta(&[w(None, None)], 4), None);
        assert_eq!(short_duration(3725.0), "1h02m");
    }
}
