//! Readers of the files upstream stages leave in their results folders: JSON objects and CSV
//! tables, as text ready for the page, each reporting why it could not be read.

use super::format::tidy;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A CSV file's header and rows, as text.
pub type Table = (Vec<String>, Vec<Vec<String>>);

/// A JSON object file, or why it could not be read (None when the file does not exist).
pub fn read_object(path: &Path) -> Option<Result<BTreeMap<String, Value>, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("cannot read {}: {e}", path.display()))),
    };
    Some(
        serde_json::from_str::<BTreeMap<String, Value>>(&text)
            .map_err(|e| format!("{} is not a JSON object: {e}", path.display())),
    )
}

/// A stage's `metrics.json` with its `measurements.json` (speeds) laid over it, or why it could
/// not be read (None when there is no metrics.json).
pub fn metrics_of(dir: &Path) -> Option<Result<BTreeMap<String, Value>, String>> {
    let mut m = match read_object(&dir.join("metrics.json"))? {
        Ok(m) => m,
        Err(e) => return Some(Err(e)),
    };
    if let Some(Ok(meas)) = read_object(&dir.join("measurements.json")) {
        m.extend(
            meas.into_iter()
                .filter(|(_, v)| !v.is_object() && !v.is_array()),
        );
    }
    Some(Ok(m))
}

/// A CSV file as header and rows of text (long decimals shortened), or why not (None when it
/// does not exist).
pub fn read_table(path: &Path) -> Option<Result<Table, String>> {
    if !path.exists() {
        return None;
    }
    let read = || -> Result<_, csv::Error> {
        let mut rdr = csv::Reader::from_path(path)?;
        let headers = rdr.headers()?.iter().map(str::to_string).collect();
        let mut rows = Vec::new();
        for r in rdr.records() {
            rows.push(r?.iter().map(tidy).collect());
        }
        Ok((headers, rows))
    };
    Some(read().map_err(|e| format!("cannot read {}: {e}", path.display())))
}
