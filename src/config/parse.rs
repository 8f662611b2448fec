//! Reading a pipeline file: the serde types of its YAML, syntax errors with `file:line:col`,
//! YAML-to-JSON conversion that refuses non-finite numbers, and stage-name rules.

use super::ids::{shown, unsafe_part};
use super::limits::MAX_YAML_BYTES;
use super::locate::at;
use crate::error::{PipeError, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::Path;

pub(crate) fn cfg(msg: impl Into<String>) -> PipeError {
    PipeError::Config(super::ConfigError::new(msg))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPipeline {
    pub name: Option<String>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub defaults: serde_yaml::Mapping,
    pub stages: serde_yaml::Mapping,
    /// The remote store for `push`, `pull` and `run --pull/--push` (`s3://bucket/prefix` or a
    /// folder); checked by `settings`.
    #[serde(default)]
    pub remote: Option<serde_yaml::Value>,
    /// How stages are executed (`{ kind: local | slurm, … }`); checked by `settings`.
    #[serde(default)]
    pub executor: Option<serde_yaml::Value>,
    /// Folders outside the project that stages may read inputs from (`config::inputs`).
    #[serde(default)]
    pub allow_outside: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub kind: String,
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default)]
    pub params: serde_yaml::Mapping,
    pub matrix: Option<serde_yaml::Mapping>,
    /// What a Slurm job of the stage asks for (`config::resources`); never fingerprinted.
    #[serde(default)]
    pub resources: Option<serde_yaml::Value>,
}

/// A parsed pipeline file: its text (for positions), name, seed, defaults and stages in file
/// order.
pub(crate) struct Source {
    /// The file as given on the command line.
    pub fname: String,
    pub text: String,
    pub name: String,
    pub seed: u64,
    pub defaults: serde_yaml::Mapping,
    /// `defaults.<kind>.resources`, taken out of `defaults` (they are not parameters).
    pub kind_resources: Vec<(String, serde_yaml::Value)>,
    pub stages: Vec<(String, RawStage)>,
    /// `allow_outside:` as written.
    pub allow_outside: Vec<String>,
    /// The top-level `remote:` and `executor:` values, as written (see `settings`).
    pub remote: Option<serde_yaml::Value>,
    pub executor: Option<serde_yaml::Value>,
}

impl Source {
    /// `file:line:col` of a key path in the pipeline file.
    pub fn at(&self, path: &[&str]) -> String {
        at(&self.fname, &self.text, path)
    }

    /// `file:line:col` of a stage's key, or of the stage when the key is not written.
    pub fn at_stage(&self, stage: &str, key: &str) -> String {
        super::locate::at_best(&self.fname, &self.text, &["stages", stage, key])
    }
}

/// A serde_yaml error as `file:line:col: invalid pipeline YAML: …`.
pub(crate) fn yaml_error(file: &str, e: &serde_yaml::Error) -> PipeError {
    let loc = e
        .location()
        .map(|l| format!(":{}:{}", l.line(), l.column()))
        .unwrap_or_default();
    let msg = e.to_string();
    // serde_yaml appends " at line L column C"; the location is already in front.
    let msg = match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    // serde_yaml reads a whole number beyond 64 bits as "invalid type: integer `N` as u128".
    let msg = match regex::Regex::new(r"invalid type: integer `(-?\d+)` as [ui]128.*$")
        .expect("a valid pattern")
        .captures(&msg)
    {
        Some(c) => format!(
            "{}{}",
            &msg[..c.get(0).expect("whole match").start()],
            out_of_range(&c[1])
        ),
        None => msg,
    };
    cfg(format!("{file}{loc}: invalid pipeline YAML: {msg}"))
}

/// Why a YAML value cannot become a parameter value.
#[derive(Debug)]
pub(crate) enum ConvError {
    /// `.nan`, `.inf` or `-.inf` at this key path (empty: the value itself).
    NonFinite(Vec<String>, String),
    /// A map key that is not a string or a number.
    Key(Vec<String>),
    /// A number beyond what a parameter can hold (a whole number beyond 64 bits, a decimal
    /// beyond ±1.8e308), as written.
    OutOfRange(String),
}

impl ConvError {
    /// The key path below the converted value.
    pub fn path(&self) -> &[String] {
        match self {
            ConvError::NonFinite(p, _) | ConvError::Key(p) => p,
            ConvError::OutOfRange(_) => &[],
        }
    }

    /// The sentence, without a position.
    pub fn sentence(&self) -> String {
        let key = self.path().join(".");
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("`{key}` ")
        };
        match self {
            ConvError::NonFinite(_, v) => format!("{key}must be a finite number (got {v})"),
            ConvError::Key(_) => format!("{key}has a map key that is not a string"),
            ConvError::OutOfRange(v) => format!("{key}{}", out_of_range(v)),
        }
    }
}

/// YAML to JSON, refusing non-finite numbers (JSON has none; serde would silently make them
/// `null`, reported later as "invalid type: null").
pub(crate) fn to_json(v: &serde_yaml::Value) -> std::result::Result<Value, ConvError> {
    fn go(v: &serde_yaml::Value, path: &mut Vec<String>) -> std::result::Result<Value, ConvError> {
        use serde_yaml::Value as Y;
        Ok(match v {
            Y::Null => Value::Null,
            Y::Bool(b) => Value::Bool(*b),
            Y::Number(n) => {
                if let Some(i) = n.as_u64() {
                    Value::from(i)
                } else if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    match serde_json::Number::from_f64(f) {
                        Some(x) => Value::Number(x),
                        None => {
                            let shown = if f.is_nan() {
                                ".nan"
                            } else if f > 0.0 {
                                ".inf"
                            } else {
                                "-.inf"
                            };
                            return Err(ConvError::NonFinite(path.clone(), shown.into()));
                        }
                    }
                }
            }
            Y::String(s) => Value::String(s.clone()),
            Y::Sequence(s) => {
                let mut out = Vec::with_capacity(s.len());
                for (i, x) in s.iter().enumerate() {
                    path.push(i.to_string());
                    out.push(go(x, path)?);
                    path.pop();
                }
                Value::Array(out)
            }
            Y::Mapping(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let key = match k {
                        Y::String(s) => s.clone(),
                        Y::Number(n) => n.to_string(),
                        Y::Bool(b) => b.to_string(),
                        _ => return Err(ConvError::Key(path.clone())),
                    };
                    path.push(key.clone());
                    out.insert(key, go(x, path)?);
                    path.pop();
                }
                Value::Object(out)
            }
            Y::Tagged(t) => go(&t.value, path)?,
        })
    }
    go(v, &mut Vec::new())
}

/// A YAML map as a JSON object (see [`to_json`]).
pub(crate) fn map_to_json(
    m: &serde_yaml::Mapping,
) -> std::result::Result<Map<String, Value>, ConvError> {
    match to_json(&serde_yaml::Value::Mapping(m.clone()))? {
        Value::Object(o) => Ok(o),
        _ => Ok(Map::new()),
    }
}

/// Why a number written `v` cannot be a parameter value.
fn out_of_range(v: &str) -> String {
    if v.contains(['.', 'e', 'E']) {
        format!("is the number {v}, beyond the range of numbers (about ±1.8e308)")
    } else {
        format!(
            "is the whole number {v}, beyond the 64-bit range ({} to {})",
            i64::MIN,
            u64::MAX
        )
    }
}

/// Whether `s` is written as a number (a YAML 1.2 decimal integer or float) that does not fit
/// one: `18446744073709551616`, `-9223372036854775809`, `1e400`.
fn is_out_of_range_number(s: &str) -> bool {
    let t = s.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().is_err() && t.parse::<u64>().is_err();
    }
    digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && t.parse::<f64>().is_ok_and(|x| x.is_infinite())
}

/// Parses a `--set` or environment value as a YAML scalar (plain text when it is not YAML; a
/// number too large for a parameter is an error, never text).
pub(crate) fn parse_value(s: &str) -> std::result::Result<Value, ConvError> {
    if is_out_of_range_number(s) {
        return Err(ConvError::OutOfRange(s.trim().to_string()));
    }
    match serde_yaml::from_str::<serde_yaml::Value>(s) {
        Ok(v) => to_json(&v),
        Err(_) => Ok(Value::String(s.to_string())),
    }
}

/// Why a stage name cannot be used, if it can't.
fn bad_stage_name(s: &str) -> Option<String> {
    if s == crate::layout::LOGS {
        return Some(
            "is reserved (results/<pipeline>/logs/ holds the logs); rename the stage".into(),
        );
    }
    if let Some(why) = unsafe_part(s) {
        return Some(format!("{why}; stage names become folder names and ids"));
    }
    if s.contains(['@', ',', '=', ' ']) {
        return Some("may not contain `@ , = /` or spaces".into());
    }
    None
}

/// Reads and parses the pipeline file (a regular file inside the project, of at most
/// [`MAX_YAML_BYTES`]); checks stage names.
pub(crate) fn read(root: &Path, file: &Path) -> Result<Source> {
    let fname = file.display().to_string();
    super::inputs::check_pipeline_file(root, file)?;
    let text = crate::input_file::read_text(&root.join(file), "a pipeline file", MAX_YAML_BYTES)
        .map_err(|e| cfg(format!("cannot read pipeline file {fname}: {e}")))?;
    let raw: RawPipeline = serde_yaml::from_str(&text).map_err(|e| yaml_error(&fname, &e))?;
    for (i, f) in raw.allow_outside.iter().enumerate() {
        if f.is_empty() || f.contains('\0') {
            return Err(cfg(format!(
                "{}: `allow_outside` entry {} must be a folder path (not empty, no NUL)",
                at(&fname, &text, &["allow_outside"]),
                i + 1
            )));
        }
    }
    let name = raw.name.clone().unwrap_or_else(|| default_name(file));
    if name.is_empty()
        || name.starts_with('.')
        || unsafe_part(&name).is_some()
        || name.contains(' ')
    {
        return Err(cfg(format!(
            "{}: pipeline `name: {}` must be a plain folder name (no `/`, `\\`, spaces, control characters or leading `.`, at most 200 bytes)",
            at(&fname, &text, &["name"]),
            shown(&name)
        )));
    }
    let mut stages: Vec<(String, RawStage)> = Vec::new();
    for (k, v) in &raw.stages {
        let Some(sname) = k.as_str() else {
            return Err(cfg(format!(
                "{fname}: stage names must be strings, found {k:?}"
            )));
        };
        if let Some(why) = bad_stage_name(sname) {
            return Err(cfg(format!(
                "{}: stage `{}`: the stage name (a key of `stages`) {why}",
                at(&fname, &text, &["stages", sname]),
                shown(sname)
            )));
        }
        let st: RawStage = serde_yaml::from_value(v.clone()).map_err(|e| {
            cfg(format!(
                "{}: stage `{sname}`: {e}",
                at(&fname, &text, &["stages", sname])
            ))
        })?;
        stages.push((sname.to_string(), st));
    }
    if stages.is_empty() {
        return Err(cfg(format!(
            "{fname}: `stages:` is empty; add at least one stage"
        )));
    }
    let mut defaults = raw.defaults;
    let mut kind_resources = Vec::new();
    for (k, v) in defaults.iter_mut() {
        if let (Some(kind), serde_yaml::Value::Mapping(m)) = (k.as_str(), v) {
            if let Some(r) = m.remove("resources") {
                kind_resources.push((kind.to_string(), r));
            }
        }
    }
    Ok(Source {
        fname,
        text,
        name,
        seed: raw.seed,
        defaults,
        kind_resources,
        stages,
        allow_outside: raw.allow_outside,
        remote: raw.remote,
        executor: raw.executor,
    })
}

/// A pipeline's name when it has no `name:`: the file stem.
pub(crate) fn default_name(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_numbers_are_refused() {
        let v: serde_yaml::Value = serde_yaml::from_str("{ a: { lr: .nan }, b: 1.5 }").unwrap();
        let e = to_json(&v).unwrap_err();
        assert_eq!(e.path(), ["a", "lr"]);
        assert_eq!(e.sentence(), "`a.lr` must be a finite number (got .nan)");
        assert!(parse_value("-.inf").is_err());
        assert_eq!(parse_value("abc").unwrap(), Value::from("abc"));
        assert_eq!(parse_value("0.5").unwrap(), Value::from(0.5));
    }

    /// Numbers too large for a parameter are refused as numbers, never taken as text.
    #[test]
    fn numbers_out_of_range_are_named_as_numbers() {
        for v in [
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
            "-1.5e999",
        ] {
            let e = parse_value(v).unwrap_err().sentence();
            assert!(e.contains(v) && e.contains("beyond"), "{v}: {e}");
        }
        assert_eq!(
            parse_value("18446744073709551615").unwrap(),
            Value::from(u64::MAX)
        );
        assert_eq!(parse_value("-12").unwrap(), Value::from(-12));
        assert_eq!(parse_value("inf").unwrap(), Value::from("inf"));
        assert_eq!(parse_value("v1e400").unwrap(), Value::from("v1e400"));
        let e = serde_yaml::from_str::<serde_yaml::Value>("a: 18446744073709551616").unwrap_err();
        let m = yaml_error("p.yaml", &e).to_string();
        assert!(
            m.contains("is the whole number 18446744073709551616, beyond the 64-bit range"),
            "{m}"
        );
    }
}
