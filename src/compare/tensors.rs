//! Two safetensors files element by element: same tensor names, dtypes and shapes, and float
//! elements within a tolerance (integer tensors must match exactly).

use super::number::fmt_f64;
use super::tolerance::{Closeness, Tolerance};
use safetensors::{Dtype, SafeTensors};

/// Float elements of a tensor as f64, or `None` for non-float dtypes.
fn floats(dtype: Dtype, data: &[u8]) -> Option<Vec<f64>> {
    match dtype {
        Dtype::F32 => Some(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
        ),
        Dtype::F64 => Some(
            data.chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Compares two safetensors files (their bytes).
pub fn compare(old: &[u8], new: &[u8], tol: Tolerance) -> Closeness {
    if old == new {
        return Closeness::Identical;
    }
    let (a, b) = match (SafeTensors::deserialize(old), SafeTensors::deserialize(new)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Closeness::Different(format!("not a readable safetensors file: {e}"))
        }
    };
    let mut names: Vec<String> = a.names().into_iter().cloned().collect();
    names.sort();
    let mut bn: Vec<String> = b.names().into_iter().cloned().collect();
    bn.sort();
    if names != bn {
        let only: Vec<&String> = names
            .iter()
            .filter(|n| !bn.contains(n))
            .chain(bn.iter().filter(|n| !names.contains(n)))
            .collect();
        return Closeness::Different(format!(
            "tensor names differ ({})",
            only.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let (mut max_abs, mut worst, mut count) = (0f64, String::new(), 0usize);
    for name in &names {
        let (Ok(x), Ok(y)) = (a.tensor(name), b.tensor(name)) else {
            return Closeness::Different(format!("tensor `{name}` cannot be read"));
        };
        if x.dtype() != y.dtype() || x.shape() != y.shape() {
            return Closeness::Different(format!(
                "tensor `{name}`: {:?} {:?}, now {:?} {:?}",
                x.dtype(),
                x.shape(),
                y.dtype(),
                y.shape()
            ));
        }
        if x.data() == y.data() {
            continue;
        }
        let (Some(u), Some(v)) = (floats(x.dtype(), x.data()), floats(y.dtype(), y.data())) else {
            return Closeness::Different(format!("tensor `{name}` ({:?}) differs", x.dtype()));
        };
        let bad = u
            .iter()
            .zip(&v)
            .filter(|(p, q)| !tol.close(**p, **q))
            .count();
        if bad > 0 {
            let (i, (p, q)) = u
                .iter()
                .zip(&v)
                .enumerate()
                .find(|(_, (p, q))| !tol.close(**p, **q))
                .expect("a bad element exists");
            return Closeness::Different(format!(
                "tensor `{name}`: {bad} of {} elements beyond tolerance ({tol}), first at index {i}: {} → {}",
                u.len(),
                fmt_f64(*p),
                fmt_f64(*q)
            ));
        }
        for (p, q) in u.iter().zip(&v) {
            let d = (p - q).abs();
            if d > max_abs {
                max_abs = d;
                worst = name.clone();
            }
        }
        count += 1;
    }
    if count == 0 {
        // Same tensors, other bytes: the header (metadata) differs.
        return Closeness::Within("same tensors; the metadata header differs".into());
    }
    Closeness::Within(format!(
        "{count} tensor(s) differ within tolerance ({tol}); largest |Δ| {:.1e} in `{worst}`",
        max_abs
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-tensor F32 safetensors file.
    pub fn file(name: &str, values: &[f32]) -> Vec<u8> {
        let n = values.len() * 4;
        let header = format!(
            r#"{{"{name}":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{n}]}}}}"#,
            values.len()
        );
        let mut h = header.into_bytes();
        while h.len() % 8 != 0 {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn verdicts() {
        let t = Tolerance::TENSORS;
        let a = file("w", &[1.0, 2.0, 3.0]);
        assert_eq!(compare(&a, &a, t), Closeness::Identical);
        let b = file("w", &[1.0, 2.00001, 3.0]);
        assert!(matches!(compare(&a, &b, t), Closeness::Within(_)));
        let c = file("w", &[1.0, 2.5, 3.0]);
        match compare(&a, &c, t) {
            Closeness::Different(m) => {
                assert!(m.contains("1 of 3") && m.contains("index 1"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let d = file("v", &[1.0, 2.0, 3.0]);
        assert!(matches!(compare(&a, &d, t), Closeness::Different(m) if m.contains("names")));
        let e = file("w", &[1.0, 2.0]);
        assert!(matches!(compare(&a, &e, t), Closeness::Different(_)));
        assert!(matches!(compare(&a, b"junk", t), Closeness::Different(_)));
    }
}
