//! Progress and log reporting for stages: log lines go to the stage's log file and to the
//! terminal; long work shows an indicatif bar on a terminal and periodic plain lines otherwise.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The engine's multi-bar display while a run shows progress on a terminal: stage log lines and
/// stage bars go through it so that they do not tear the overall bar.
static MULTI: Mutex<Option<indicatif::MultiProgress>> = Mutex::new(None);

/// Routes echoed lines and new bars through `m` (None: plain stderr again).
pub fn set_multi_progress(m: Option<indicatif::MultiProgress>) {
    if let Ok(mut g) = MULTI.lock() {
        *g = m;
    }
}

fn multi() -> Option<indicatif::MultiProgress> {
    MULTI.lock().ok().and_then(|g| g.clone())
}

/// Where a stage reports what it is doing. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    file: Mutex<Option<File>>,
    echo: bool,
    tty: bool,
}

impl Reporter {
    /// A reporter that prefixes terminal lines with `prefix` and appends every line to `log_path`.
    pub fn new(prefix: &str, log_path: Option<&Path>, echo: bool) -> std::io::Result<Self> {
        let file = match log_path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                // A new file: never opened through a link planted at the log's path.
                Some(File::options().write(true).create_new(true).open(p)?)
            }
            None => None,
        };
        Ok(Reporter {
            inner: Arc::new(Inner {
                prefix: prefix.to_string(),
                file: Mutex::new(file),
                echo,
                tty: std::io::stderr().is_terminal(),
            }),
        })
    }

    /// A reporter that prints nothing and writes nowhere (tests, library use).
    pub fn silent() -> Self {
        Reporter {
            inner: Arc::new(Inner {
                prefix: String::new(),
                file: Mutex::new(None),
                echo: false,
                tty: false,
            }),
        }
    }

    /// One log line, echoed to the terminal when the reporter echoes.
    pub fn log(&self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        self.log_file_only(msg);
        if self.inner.echo {
            let line = format!("[{}] {msg}", self.inner.prefix);
            match multi() {
                Some(m) => {
                    let _ = m.println(line);
                }
                None => eprintln!("{line}"),
            }
        }
    }

    /// One line for the log file only: what the terminal already shows in another line (a
    /// stage's error, printed once by the scheduler as `FAILED …`).
    pub fn log_file_only(&self, msg: impl AsRef<str>) {
        if let Ok(mut f) = self.inner.file.lock() {
            if let Some(f) = f.as_mut() {
                let _ = writeln!(f, "{}", msg.as_ref());
            }
        }
    }

    /// A progress bar over `len` units of work labelled `label`.
    pub fn bar(&self, len: u64, label: &str) -> Bar {
        let pb = if self.inner.echo && self.inner.tty {
            let pb = indicatif::ProgressBar::new(len);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} {bar:30} {pos}/{len} {elapsed_precise}<{eta_precise} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb.set_prefix(format!("[{}] {label}", self.inner.prefix));
            Some(match multi() {
                Some(m) => m.add(pb),
                None => pb,
            })
        } else {
            None
        };
        Bar {
            reporter: self.clone(),
            pb,
            label: label.to_string(),
            len,
            pos: 0,
            msg: String::new(),
            last_line: Instant::now(),
        }
    }
}

/// A progress bar handle; on a non-terminal it logs a plain line at most every 10 seconds.
pub struct Bar {
    reporter: Reporter,
    pb: Option<indicatif::ProgressBar>,
    label: String,
    len: u64,
    pos: u64,
    msg: String,
    last_line: Instant,
}

impl Bar {
    pub fn inc(&mut self, n: u64) {
        self.pos += n;
        if let Some(pb) = &self.pb {
            pb.inc(n);
        } else if self.last_line.elapsed() > Duration::from_secs(10) {
            self.last_line = Instant::now();
            self.reporter.log(format!(
                "{} {}/{} {}",
                self.label, self.pos, self.len, self.msg
            ));
        }
    }

    pub fn set_message(&mut self, msg: impl Into<String>) {
        self.msg = msg.into();
        if let Some(pb) = &self.pb {
            pb.set_message(self.msg.clone());
        }
    }

    pub fn finish(self) {
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
        self.reporter.log(format!(
            "{} done {}/{} {}",
            self.label, self.pos, self.len, self.msg
        ));
    }
}
