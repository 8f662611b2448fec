//! The cumulative training logs carried from one epoch to the next: training loss and learning
//! rate per step (`metrics.csv`) and losses and perplexity per epoch (`epochs.csv`,
//! `epochs.json`). Only deterministic figures: speeds are measurements kept elsewhere.

use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::path::{Path, PathBuf};

/// Header of `metrics.csv`.
pub const STEPS_HEADER: &str = "step,epoch,train_loss,lr";

/// One epoch's figures (a row of `epochs.csv` / `epochs.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_perplexity: f64,
}

/// Why a log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Parse { path: PathBuf, msg: String },
}

/// Every step and epoch so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// `metrics.csv` data rows, as written (the number formats are part of the output).
    steps: Vec<String>,
    pub epochs: Vec<EpochRow>,
}

fn read(path: &Path) -> Result<String, HistoryError> {
    std::fs::read_to_string(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), HistoryError> {
    std::fs::write(path, bytes).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl History {
    /// The logs a previous epoch wrote into `dir`.
    pub fn load(dir: &Path) -> Result<History, HistoryError> {
        let steps_path = dir.join("metrics.csv");
        let text = read(&steps_path)?;
        let mut lines = text.lines();
        if lines.next() != Some(STEPS_HEADER) {
            return Err(HistoryError::Parse {
                path: steps_path,
                msg: format!("the header is not `{STEPS_HEADER}`"),
            });
        }
        let steps = lines
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        let epochs_path = dir.join("epochs.json");
        let epochs =
            serde_json::from_str(&read(&epochs_path)?).map_err(|e| HistoryError::Parse {
                path: epochs_path,
                msg: e.to_string(),
            })?;
        Ok(History { steps, epochs })
    }

    /// Logs one optimiser step.
    pub fn push_step(&mut self, step: u64, epoch: usize, loss: impl Display, lr: impl Display) {
        self.steps.push(format!("{step},{epoch},{loss},{lr}"));
    }

    /// The steps logged so far, as `step,epoch,train_loss,lr` rows.
    pub fn step_rows(&self) -> &[String] {
        &self.steps
    }

    /// Number of steps logged.
    pub fn n_steps(&self) -> usize {
        self.steps.len()
    }

    /// Writes `metrics.csv`, `epochs.csv` and `epochs.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), HistoryError> {
        let mut csv = format!("{STEPS_HEADER}\n");
        for r in &self.steps {
            csv.push_str(r);
            csv.push('\n');
        }
        write(&dir.join("metrics.csv"), csv.as_bytes())?;
        let mut ecsv = String::from("epoch,train_loss,val_loss,val_perplexity\n");
        for r in &self.epochs {
            ecsv.push_str(&format!(
                "{},{},{},{}\n",
                r.epoch, r.train_loss, r.val_loss, r.val_perplexity
            ));
        }
        write(&dir.join("epochs.csv"), ecsv.as_bytes())?;
        let json = serde_json::to_vec_pretty(&self.epochs).expect("plain numbers serialise");
        write(&dir.join("epochs.json"), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_history_loads_back_and_a_bad_header_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::default();
        h.push_step(1, 1, 2.5f32, 0.001f32);
        h.push_step(2, 1, 2.25f32, 0.001f32);
        h.epochs.push(EpochRow {
            epoch: 1,
            train_loss: 2.4,
            val_loss: 2.3,
            val_perplexity: 2.3f64.exp(),
        });
        h.save(dir.path()).unwrap();
        assert_eq!(History::load(dir.path()).unwrap(), h);
        std::fs::write(dir.path().join("metrics.csv"), "a,b\n").unwrap();
        let e = History::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("metrics.csv") && e.contains("header"), "{e}");
    }
}
