//! Two versions of one output file, compared by what the file is: safetensors element-wise,
//! JSON and CSV metrics with a relative tolerance (measurement fields and columns left out),
//! anything else byte for byte.

use super::measure::is_measurement_key;
use super::tolerance::{compare_json, Closeness, Tolerance};

/// Compares the committed (`old`) and recomputed (`new`) contents of the output at `path`.
pub fn compare(path: &str, old: &[u8], new: &[u8]) -> Closeness {
    if old == new {
        return Closeness::Identical;
    }
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "safetensors" => super::tensors::compare(old, new, Tolerance::TENSORS),
        "json" => match (
            serde_json::from_slice::<serde_json::Value>(old),
            serde_json::from_slice::<serde_json::Value>(new),
        ) {
            (Ok(a), Ok(b)) => compare_json(&a, &b, Tolerance::METRICS),
            _ => Closeness::Different("contents differ (not valid JSON)".into()),
        },
        "csv" => compare_csv(old, new, Tolerance::METRICS),
        _ => Closeness::Different("contents differ".into()),
    }
}

fn rows(bytes: &[u8]) -> Option<Vec<Vec<String>>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes)
        .records()
        .map(|r| r.ok().map(|r| r.iter().map(String::from).collect()))
        .collect()
}

/// CSV files with a header row: same columns; measurement columns skipped; cells that parse
/// as numbers compared with `tol`, others exactly.
pub fn compare_csv(old: &[u8], new: &[u8], tol: Tolerance) -> Closeness {
    let (Some(a), Some(b)) = (rows(old), rows(new)) else {
        return Closeness::Different("contents differ (not valid CSV)".into());
    };
    if a.len() != b.len() || a.first() != b.first() {
        return Closeness::Different(format!(
            "{} rows, now {}{}",
            a.len(),
            b.len(),
            if a.first() != b.first() {
                "; the header differs"
            } else {
                ""
            }
        ));
    }
    let header = a.first().cloned().unwrap_or_default();
    let mut max_rel = 0f64;
    let mut measurements = false;
    for (r, (x, y)) in a.iter().zip(&b).enumerate().skip(1) {
        if x.len() != y.len() {
            return Closeness::Different(format!("row {r}: {} cells, now {}", x.len(), y.len()));
        }
        for (c, (u, v)) in x.iter().zip(y).enumerate() {
            if u == v {
                continue;
            }
            let col = header.get(c).map(String::as_str).unwrap_or("");
            if is_measurement_key(col) {
                measurements = true;
                continue;
            }
            match (u.parse::<f64>(), v.parse::<f64>()) {
                (Ok(p), Ok(q)) if tol.close(p, q) => {
                    max_rel = max_rel.max((p - q).abs() / p.abs().max(q.abs()));
                }
                _ => return Closeness::Different(format!("row {r}, column `{col}`: {u} → {v}")),
            }
        }
    }
    if max_rel > 0.0 {
        Closeness::Within(format!("largest relative difference {max_rel:.1e} ({tol})"))
    } else if measurements {
        Closeness::Within("only measurements differ".into())
    } else {
        Closeness::Identical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_verdicts() {
        let t = Tolerance::METRICS;
        let a = b"epoch,loss,wall_s\n1,2.5,3\n";
        let b = b"epoch,loss,wall_s\n1,2.5,4\n";
        assert_eq!(
            compare_csv(a, b, t),
            Closeness::Within("only measurements differ".into())
        );
        let c = b"epoch,loss,wall_s\n1,2.6,3\n";
        assert!(matches!(compare_csv(a, c, t), Closeness::Different(m) if m.contains("`loss`")));
        assert!(matches!(
            compare("x.txt", b"a", b"b"),
            Closeness::Different(_)
        ));
    }
}
