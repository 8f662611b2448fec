//! What a run did, as one serialisable value: the pipeline (name, file, the overrides it ran
//! with), every instance's id, fingerprint and outcome, the counts, whether the lock file was
//! written, the report, and how the run ended. `pipe run --json` prints it; the one line
//! `pipe run` prints, and the error a run ends with, come from it too.

use crate::error::PipeError;
use crate::interrupt::Signal;
use serde::Serialize;
use std::path::PathBuf;

/// How one instance ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Outcome {
    UpToDate,
    Restored,
    Ran {
        seconds: f64,
    },
    Failed {
        message: String,
        log: PathBuf,
    },
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted {
        log: PathBuf,
    },
    /// Not run because an upstream failed (`--keep-going`).
    Skipped {
        upstream: String,
    },
}

/// One instance of the run.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub id: String,
    pub stage: String,
    /// The fingerprint of its run record (None: it did not complete).
    pub fingerprint: Option<crate::digest::Fingerprint>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What happened to the committed lock file.
#[derive(Debug, Clone, Serialize)]
pub struct LockUpdate {
    /// `pipelines/<name>.lock`, relative to the project root.
    pub path: PathBuf,
    /// Written (or already up to date); false: left as it was, see `reason`.
    pub written: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A stage failure, for `failed`.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub id: String,
    pub message: String,
    pub log: PathBuf,
}

/// How a run that was stopped by a signal ended.
#[derive(Debug, Clone, Serialize)]
pub struct Interruption {
    /// `SIGINT` or `SIGTERM`.
    pub signal: String,
    #[serde(skip)]
    pub sig: Option<Signal>,
    /// The instance it stopped, and its log (None: between instances).
    pub stage: Option<String>,
    pub log: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The pipeline's `name`.
    pub pipeline: String,
    /// The pipeline file, relative to the project root.
    pub file: PathBuf,
    /// The overrides the run had (`--set a.b=1`, `--params FILE`, `PIPE_A__B=1`).
    pub overrides: Vec<String>,
    pub ran: usize,
    pub restored: usize,
    pub up_to_date: usize,
    pub failed: Vec<Failure>,
    pub skipped: Vec<String>,
    /// Every instance the run reached, in topological order.
    pub stages: Vec<StageSummary>,
    /// The HTML report, if a report stage completed.
    pub report: Option<PathBuf>,
    pub lock: LockUpdate,
    pub seconds: f64,
    pub interrupted: Option<Interruption>,
}

impl RunSummary {
    /// Counts and failures from the instances' outcomes.
    pub(crate) fn tally(&mut self) {
        for s in &self.stages {
            match &s.outcome {
                Outcome::Ran { .. } => self.ran += 1,
                Outcome::Restored => self.restored += 1,
                Outcome::UpToDate => self.up_to_date += 1,
                Outcome::Failed { message, log } => self.failed.push(Failure {
                    id: s.id.clone(),
                    message: message.clone(),
                    log: log.clone(),
                }),
                Outcome::Skipped { .. } => self.skipped.push(s.id.clone()),
                Outcome::Interrupted { .. } => {}
            }
        }
    }

    /// `ci: 3 ran, 1 restored, 10 up to date, 1 failed, 2 skipped (a, b) in 1.20s`.
    pub fn line(&self) -> String {
        let failed = if self.failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed", self.failed.len())
        };
        let skipped = if self.skipped.is_empty() {
            String::new()
        } else {
            format!(
                ", {} skipped ({})",
                self.skipped.len(),
                self.skipped.join(", ")
            )
        };
        format!(
            "{}: {} ran, {} restored, {} up to date{failed}{skipped} in {:.2}s",
            self.pipeline, self.ran, self.restored, self.up_to_date, self.seconds
        )
    }

    /// Ok when every instance completed; else the error the run ends with (each stage's error
    /// was printed once already, on its `FAILED` line).
    pub fn status(&self) -> Result<(), PipeError> {
        if let Some(i) = &self.interrupted {
            return Err(PipeError::Interrupted {
                signal: i.sig.unwrap_or(Signal::Int),
                stage: i.stage.clone().zip(i.log.clone()),
            });
        }
        if !self.failed.is_empty() {
            return Err(PipeError::StagesFailed(
                self.failed
                    .iter()
                    .map(|f| (f.id.clone(), f.log.clone()))
                    .collect(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(outcomes: Vec<Outcome>) -> RunSummary {
        let mut s = RunSummary {
            pipeline: "p".into(),
            file: "pipelines/p.yaml".into(),
            overrides: vec!["--set a.x=1".into()],
            ran: 0,
            restored: 0,
            up_to_date: 0,
            failed: Vec::new(),
            skipped: Vec::new(),
            stages: outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| StageSummary {
                    id: format!("s{i}"),
                    stage: format!("s{i}"),
                    fingerprint: None,
                    outcome,
                })
                .collect(),
            report: None,
            lock: LockUpdate {
                path: "pipelines/p.lock".into(),
                written: false,
                reason: Some("overrides".into()),
            },
            seconds: 1.5,
            interrupted: None,
        };
        s.tally();
        s
    }

    #[test]
    fn counts_line_json_and_the_error_of_a_run() {
        let s = summary(vec![
            Outcome::Ran { seconds: 0.5 },
            Outcome::UpToDate,
            Outcome::Failed {
                message: "boom".into(),
                log: "l/s2.log".into(),
            },
            Outcome::Skipped {
                upstream: "s2".into(),
            },
        ]);
        assert_eq!(
            s.line(),
            "p: 1 ran, 0 restored, 1 up to date, 1 failed, 1 skipped (s3) in 1.50s"
        );
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["stages"][0]["state"], "ran");
        assert_eq!(j["stages"][0]["seconds"], 0.5);
        assert_eq!(j["stages"][1]["state"], "up-to-date");
        assert_eq!(j["failed"][0]["message"], "boom");
        assert_eq!(j["overrides"][0], "--set a.x=1");
        assert_eq!(j["lock"]["written"], false);
        assert_eq!(s.status().unwrap_err().exit_code(), 1);
        assert!(summary(vec![Outcome::Restored]).status().is_ok());
    }
}
