//! The curves of an experiment, read from the store (the run records of its instances and the
//! objects they name) or, for a training still running, from its live file: training loss per
//! step, validation loss and perplexity per epoch, and the curves `command` stages declare.

use super::Experiment;
use crate::cache::Cache;
use crate::layout::Area;
use std::collections::BTreeMap;

/// A declared curve of a command stage: (stage, title, x column, y column) → points.
pub type Declared = BTreeMap<(String, String, String, String), Vec<(f64, f64)>>;

/// An experiment's curves.
#[derive(Debug, Default, Clone)]
pub struct Curves {
    /// (step, training loss).
    pub train_loss: Vec<(f64, f64)>,
    /// (epoch, validation loss).
    pub val_loss: Vec<(f64, f64)>,
    /// (epoch, validation perplexity).
    pub val_perplexity: Vec<(f64, f64)>,
    pub declared: Declared,
    /// The training is still running (its curve so far).
    pub live: bool,
}

/// A results file of an instance, from the store.
fn results_file(cache: &Cache, fp: &crate::digest::Fingerprint, path: &str) -> Option<String> {
    let rec = cache.record(fp)?;
    let out = rec
        .outputs
        .iter()
        .find(|o| o.area == Area::Results && o.path == path)?;
    std::fs::read_to_string(cache.object_path(&out.blake3)).ok()
}

/// Columns `x` and `y` of a CSV text as numbers (rows where either does not parse are skipped).
pub fn csv_points(text: &str, x: &str, y: &str) -> Vec<(f64, f64)> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let Ok(h) = rdr.headers() else {
        return Vec::new();
    };
    let (Some(xi), Some(yi)) = (h.iter().position(|c| c == x), h.iter().position(|c| c == y))
    else {
        return Vec::new();
    };
    rdr.records()
        .flatten()
        .filter_map(|r| Some((r.get(xi)?.parse().ok()?, r.get(yi)?.parse().ok()?)))
        .filter(|(a, b): &(f64, f64)| a.is_finite() && b.is_finite())
        .collect()
}

/// The curves of an experiment.
pub fn of(cache: &Cache, e: &Experiment) -> Curves {
    let mut c = Curves::default();
    // The last epoch of the first train stage holds the whole history.
    let train: Vec<&super::InstanceRef> =
        e.instances.iter().filter(|i| i.kind == "train").collect();
    if train.is_empty() && super::is_running(e) {
        // Its instances are recorded when the run ends: the training running now.
        if let Some(t) =
            super::latest_live(cache.dir(), e).and_then(|p| std::fs::read_to_string(p).ok())
        {
            c.train_loss = csv_points(&t, "step", "loss");
            c.live = true;
        }
    }
    if let Some(first) = train.first() {
        let last_done = train
            .iter()
            .rev()
            .filter(|i| i.stage == first.stage)
            .find_map(|i| {
                i.fingerprint
                    .as_ref()
                    .filter(|fp| cache.record(fp).is_some())
            });
        if let Some(fp) = last_done {
            if let Some(t) = results_file(cache, fp, "metrics.csv") {
                c.train_loss = csv_points(&t, "step", "train_loss");
            }
            if let Some(t) = results_file(cache, fp, "epochs.csv") {
                c.val_loss = csv_points(&t, "epoch", "val_loss");
                c.val_perplexity = csv_points(&t, "epoch", "val_perplexity");
            }
        }
        if super::is_running(e) {
            let running = train.iter().find(|i| match &i.fingerprint {
                Some(fp) => cache.record(fp).is_none(),
                None => true,
            });
            let live = running.and_then(|i| match &i.fingerprint {
                Some(fp) => Some(super::live_file(cache.dir(), fp.as_str())),
                None => super::latest_live(cache.dir(), e),
            });
            if let Some(live) = live {
                if let Ok(t) = std::fs::read_to_string(live) {
                    let last = c.train_loss.last().map(|p| p.0).unwrap_or(0.0);
                    c.train_loss.extend(
                        csv_points(&t, "step", "loss")
                            .into_iter()
                            .filter(|p| p.0 > last),
                    );
                    c.live = true;
                }
            }
        }
    }
    for i in e.instances.iter().filter(|i| i.kind == "command") {
        let Some(fp) = &i.fingerprint else { continue };
        let Some(t) = results_file(cache, fp, "plots.json") else {
            continue;
        };
        let Ok(entries) =
            serde_json::from_str::<Vec<crate::stage::command::declared::PlotEntry>>(&t)
        else {
            continue;
        };
        for p in entries {
            let Some(csv) = results_file(cache, fp, &p.csv) else {
                continue;
            };
            let title = p.decl.title.clone().unwrap_or_else(|| p.decl.file.clone());
            for y in &p.decl.y {
                c.declared.insert(
                    (i.id.clone(), title.clone(), p.decl.x.clone(), y.clone()),
                    csv_points(&csv, &p.decl.x, y),
                );
            }
        }
    }
    c
}
