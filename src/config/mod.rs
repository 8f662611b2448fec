//! Pipeline files: serde types, figment layering of parameters, validation, and matrix / epoch
//! expansion into stage instances (the nodes of the DAG).

use crate::error::{PipeError, Result};
use crate::stage::{self, StageKind};
use figment::providers::{Format, Serialized, Yaml};
use figment::Figment;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Overrides given on the command line (and the environment).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--set stage.key=value`, in the order given.
    pub sets: Vec<String>,
    /// `--params FILE`: a YAML map `stage: { key: value }`.
    pub params_file: Option<PathBuf>,
    /// Environment variables considered for `PIPE_<STAGE>__<KEY>` (normally `std::env::vars()`).
    pub env: Vec<(String, String)>,
}

impl Overrides {
    /// Overrides with the process environment.
    pub fn with_env(sets: Vec<String>, params_file: Option<PathBuf>) -> Self {
        Overrides {
            sets,
            params_file,
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("PIPE_"))
                .collect(),
        }
    }
}

/// One stage instance: a node of the expanded DAG.
#[derive(Clone)]
pub struct Node {
    /// Instance id: `tokenize`, `beam-eval@beam_width=5`, `train@epoch=2`.
    pub id: String,
    /// Base stage name.
    pub stage: String,
    /// Folder name under `checkpoints/<pipeline>/`: the stage name, plus the matrix point if any.
    pub ckpt_name: String,
    pub kind: &'static dyn StageKind,
    pub kind_name: String,
    /// Fully merged parameters (matrix point and `epoch` included).
    pub params: Value,
    /// Upstream instance ids, in the order the stage sees them.
    pub needs: Vec<String>,
    /// Matrix point (empty without a matrix).
    pub matrix: BTreeMap<String, Value>,
    /// Epoch of a per-epoch kind.
    pub epoch: Option<u64>,
}

impl Node {
    /// Parameters that enter the fingerprint (`epochs` dropped for per-epoch kinds).
    pub fn fingerprint_params(&self) -> Value {
        let mut p = self.params.clone();
        if self.kind.info().per_epoch {
            if let Value::Object(m) = &mut p {
                m.remove("epochs");
            }
        }
        p
    }
}

/// A loaded, validated and expanded pipeline.
pub struct Pipeline {
    pub name: String,
    pub seed: u64,
    /// The pipeline file as given.
    pub file: PathBuf,
    /// Project root (the folder `pipe` runs in).
    pub root: PathBuf,
    /// Base stage names in file order.
    pub stages: Vec<String>,
    /// Instances: stages in file order, each stage's instances in sorted id order.
    pub nodes: Vec<Node>,
}

impl Pipeline {
    /// The `<stem>.lock` file beside the pipeline file.
    pub fn lock_path(&self) -> PathBuf {
        let stem = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipe".into());
        let p = self.root.join(&self.file);
        p.with_file_name(format!("{stem}.lock"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: Option<String>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    defaults: serde_yaml::Mapping,
    stages: serde_yaml::Mapping,
    /// Read by `crate::executor::select`.
    #[allow(dead_code)]
    executor: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    kind: String,
    #[serde(default)]
    needs: Vec<String>,
    #[serde(default)]
    params: serde_yaml::Mapping,
    matrix: Option<serde_yaml::Mapping>,
}

fn cfg(msg: impl Into<String>) -> PipeError {
    PipeError::Config(msg.into())
}

/// `file:line:col` of the first `key:` after each earlier key of `path`, best effort.
pub fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let mut pos = 0;
    for key in path {
        let mut found = None;
        let mut from = pos;
        while let Some(i) = text[from..].find(key) {
            let at = from + i;
            let before = text[..at].chars().last();
            let after = &text[at + key.len()..];
            let bounded = matches!(
                before,
                None | Some(' ' | '\t' | '\n' | '{' | ',' | '"' | '\'')
            ) && (after.starts_with(':')
                || after.starts_with("\":")
                || after.starts_with("':"));
            if bounded {
                found = Some(at);
                break;
            }
            from = at + key.len();
        }
        pos = found?;
    }
    let line = text[..pos].matches('\n').count() + 1;
    let col = pos - text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    Some((line, col))
}

fn at(file: &str, text: &str, path: &[&str]) -> String {
    match locate(text, path) {
        Some((l, c)) => format!("{file}:{l}:{c}"),
        None => file.to_string(),
    }
}

/// Edit distance for "did you mean".
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let v = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
            cur.push(v);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The nearest name in `valid`, as a hint sentence.
pub fn nearest<'a>(name: &str, valid: impl IntoIterator<Item = &'a String>) -> String {
    let best = valid
        .into_iter()
        .map(|v| (levenshtein(name, v), v))
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    match best {
        Some((_, v)) => format!("did you mean `{v}`?"),
        None => "this kind takes no parameters".into(),
    }
}

fn yaml_to_json(v: &serde_yaml::Value) -> std::result::Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn mapping_to_object(m: &serde_yaml::Mapping, what: &str) -> Result<Map<String, Value>> {
    match yaml_to_json(&serde_yaml::Value::Mapping(m.clone())) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(cfg(format!("{what} must be a map"))),
        Err(e) => Err(cfg(format!("{what}: {e}"))),
    }
}

/// A matrix value as it appears in ids and `${key}` substitution.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses `--set`/environment values as YAML scalars.
pub fn parse_scalar(s: &str) -> Value {
    serde_yaml::from_str::<serde_yaml::Value>(s)
        .ok()
        .and_then(|v| yaml_to_json(&v).ok())
        .unwrap_or_else(|| Value::String(s.to_string()))
}

fn substitute(v: &mut Value, vars: &BTreeMap<String, Value>) {
    match v {
        Value::String(s) if s.contains("${") => {
            for (k, val) in vars {
                let pat = format!("${{{k}}}");
                if s.contains(&pat) {
                    *s = s.replace(&pat, &scalar_text(val));
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, vars)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, vars)),
        _ => {}
    }
}

/// Instance id from the base name and a sorted point.
pub fn instance_id(stage: &str, point: &BTreeMap<String, Value>) -> String {
    if point.is_empty() {
        return stage.to_string();
    }
    let parts: Vec<String> = point
        .iter()
        .map(|(k, v)| format!("{k}={}", scalar_text(v)))
        .collect();
    format!("{stage}@{}", parts.join(","))
}

/// Orders ids as people read them: runs of digits compare as numbers (digits after a `.` as a
/// fraction), so `beam-eval@beam_width=5` comes before `beam-eval@beam_width=10` and
/// `lr=0.0003` before `lr=0.001`; ties fall back to the plain string order.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    let mut after_dot = false;
    while !x.is_empty() && !y.is_empty() {
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (dx, dy) = (digits(x), digits(y));
        let ord = if dx > 0 && dy > 0 && after_dot {
            let o = x[..dx].cmp(&y[..dy]);
            x = &x[dx..];
            y = &y[dy..];
            after_dot = false;
            o
        } else if dx > 0 && dy > 0 {
            let (nx, ny) = (&x[..dx], &y[..dy]);
            let trim = |n: &[u8]| -> usize { n.iter().take_while(|&&c| c == b'0').count() };
            let (nx, ny) = (&nx[trim(nx)..], &ny[trim(ny)..]);
            let o = nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny));
            x = &x[dx..];
            y = &y[dy..];
            o
        } else {
            let o = x[0].cmp(&y[0]);
            after_dot = x[0] == b'.';
            x = &x[1..];
            y = &y[1..];
            o
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    x.len().cmp(&y.len()).then_with(|| a.cmp(b))
}

/// Every combination of the matrix values, each a sorted point.
fn combinations(matrix: &BTreeMap<String, Vec<Value>>) -> Vec<BTreeMap<String, Value>> {
    let mut out = vec![BTreeMap::new()];
    for (k, vals) in matrix {
        let mut next = Vec::new();
        for p in &out {
            for v in vals {
                let mut q = p.clone();
                q.insert(k.clone(), v.clone());
                next.push(q);
            }
        }
        out = next;
    }
    out
}

struct KindDefaults {
    /// Where the default layer comes from (for messages).
    source: String,
    keys: Vec<String>,
    /// A project-local override file, merged with `Yaml::file_exact`.
    local: Option<PathBuf>,
    compiled: Value,
}

fn defaults_value(text: &str, source: &str) -> Result<Map<String, Value>> {
    let v: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| yaml_error(source, &e))?;
    match v {
        serde_yaml::Value::Null => Ok(Map::new()),
        v => match yaml_to_json(&v).map_err(|e| cfg(format!("{source}: {e}")))? {
            Value::Object(m) => Ok(m),
            _ => Err(cfg(format!(
                "{source}: the defaults must be a map of parameters"
            ))),
        },
    }
}

/// The default layer of a kind: the compiled-in `stages/<kind>.yaml`, with a project-local
/// `stages/<kind>.yaml` (when present) merged over it.
fn kind_defaults(root: &Path, kind: &dyn StageKind) -> Result<KindDefaults> {
    let info = kind.info();
    let builtin = format!("stages/{}.yaml (built in)", info.name);
    let compiled = defaults_value(info.defaults_yaml, &builtin)?;
    let mut keys: BTreeSet<String> = compiled.keys().cloned().collect();
    let local = root.join("stages").join(format!("{}.yaml", info.name));
    let (source, local) = if local.is_file() {
        let source = format!("stages/{}.yaml", info.name);
        let t = std::fs::read_to_string(&local)
            .map_err(|e| cfg(format!("cannot read {source}: {e}")))?;
        keys.extend(defaults_value(&t, &source)?.keys().cloned());
        (source, Some(local))
    } else {
        (builtin, None)
    };
    Ok(KindDefaults {
        source,
        keys: keys.into_iter().collect(),
        local,
        compiled: Value::Object(compiled),
    })
}

fn yaml_error(file: &str, e: &serde_yaml::Error) -> PipeError {
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
    cfg(format!("{file}{loc}: invalid pipeline YAML: {msg}"))
}

/// Loads, layers, validates and expands a pipeline file. `root` is the project root; `file` is
/// the pipeline path as given (relative to the root or absolute).
pub fn load(root: &Path, file: &Path, ov: &Overrides) -> Result<Pipeline> {
    let fname = file.display().to_string();
    let full = root.join(file);
    let text = std::fs::read_to_string(&full)
        .map_err(|e| cfg(format!("cannot read pipeline file {fname}: {e}")))?;
    let raw: RawPipeline = serde_yaml::from_str(&text).map_err(|e| yaml_error(&fname, &e))?;
    let name = raw.name.unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".into())
    });
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(cfg(format!(
            "{}: pipeline `name: {name}` must be a plain folder name",
            at(&fname, &text, &["name"])
        )));
    }

    // Raw stages, in file order.
    let mut stages: Vec<(String, RawStage)> = Vec::new();
    for (k, v) in &raw.stages {
        let Some(sname) = k.as_str() else {
            return Err(cfg(format!(
                "{fname}: stage names must be strings, found {k:?}"
            )));
        };
        if sname == "logs" {
            return Err(cfg(format!(
                "{}: stage name `logs` is reserved (results/<pipeline>/logs/ holds the logs); rename the stage",
                at(&fname, &text, &["stages", sname])
            )));
        }
        if sname.is_empty() || sname.contains(['@', ',', '=', '/', '\\', ' ']) {
            return Err(cfg(format!(
                "{}: stage name `{sname}` may not contain `@ , = /` or spaces",
                at(&fname, &text, &["stages", sname])
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
    let names: Vec<String> = stages.iter().map(|(n, _)| n.clone()).collect();
    let name_set: BTreeSet<&String> = names.iter().collect();

    // Kinds and their default layers.
    let mut kinds: HashMap<String, (&'static dyn StageKind, KindDefaults)> = HashMap::new();
    let all_kinds: Vec<String> = stage::registry()
        .iter()
        .map(|k| k.info().name.to_string())
        .collect();
    for (sname, st) in &stages {
        if kinds.contains_key(&st.kind) {
            continue;
        }
        let Some(kind) = stage::find(&st.kind) else {
            return Err(cfg(format!(
                "{}: stage `{sname}`: unknown kind `{}`; {} (kinds: {})",
                at(&fname, &text, &["stages", sname, "kind"]),
                st.kind,
                nearest(&st.kind, &all_kinds),
                all_kinds.join(", ")
            )));
        };
        kinds.insert(st.kind.clone(), (kind, kind_defaults(root, kind)?));
    }

    // needs must name stages.
    for (sname, st) in &stages {
        for n in &st.needs {
            if !name_set.contains(n) {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: `needs` names `{n}`, which is not a stage of this pipeline; {}",
                    at(&fname, &text, &["stages", sname, "needs"]),
                    nearest(n, &names)
                )));
            }
        }
    }
    check_cycles(&fname, &stages)?;

    // Pipeline defaults: per kind.
    let mut defaults: HashMap<String, Map<String, Value>> = HashMap::new();
    for (k, v) in &raw.defaults {
        let kname = k.as_str().unwrap_or_default().to_string();
        let Some(kind) = stage::find(&kname) else {
            return Err(cfg(format!(
                "{}: `defaults` names unknown kind `{kname}`; {}",
                at(&fname, &text, &["defaults", &kname]),
                nearest(&kname, &all_kinds)
            )));
        };
        let serde_yaml::Value::Mapping(m) = v else {
            return Err(cfg(format!(
                "{}: `defaults.{kname}` must be a map of parameters",
                at(&fname, &text, &["defaults", &kname])
            )));
        };
        let obj = mapping_to_object(m, &format!("{fname}: defaults.{kname}"))?;
        let kd = match kinds.get(&kname) {
            Some((_, kd)) => kd,
            None => {
                kinds.insert(kname.clone(), (kind, kind_defaults(root, kind)?));
                &kinds[&kname].1
            }
        };
        for key in obj.keys() {
            if !kd.keys.contains(key) {
                return Err(cfg(format!(
                    "{}: `defaults.{kname}`: unknown parameter `{key}` of kind `{kname}`; {} (see {})",
                    at(&fname, &text, &["defaults", &kname, key]),
                    nearest(key, &kd.keys),
                    kd.source
                )));
            }
        }
        defaults.insert(kname, obj);
    }

    // --params FILE: stage -> params.
    let mut file_params: HashMap<String, Map<String, Value>> = HashMap::new();
    let mut file_params_name = String::new();
    if let Some(pf) = &ov.params_file {
        file_params_name = pf.display().to_string();
        let t = std::fs::read_to_string(root.join(pf))
            .map_err(|e| cfg(format!("cannot read --params file {file_params_name}: {e}")))?;
        let m: serde_yaml::Mapping = match serde_yaml::from_str::<Option<serde_yaml::Mapping>>(&t) {
            Ok(m) => m.unwrap_or_default(),
            Err(e) => return Err(yaml_error(&file_params_name, &e)),
        };
        for (k, v) in &m {
            let sname = k.as_str().unwrap_or_default().to_string();
            if !name_set.contains(&sname) {
                return Err(cfg(format!(
                    "{}: stage `{sname}` is not in {fname}; {}",
                    at(&file_params_name, &t, &[&sname]),
                    nearest(&sname, &names)
                )));
            }
            let serde_yaml::Value::Mapping(pm) = v else {
                return Err(cfg(format!(
                    "{file_params_name}: `{sname}` must be a map of parameters"
                )));
            };
            file_params.insert(
                sname.clone(),
                mapping_to_object(pm, &format!("{file_params_name}: {sname}"))?,
            );
        }
    }

    // Environment PIPE_<STAGE>__<KEY>.
    let mut env_params: HashMap<String, Map<String, Value>> = HashMap::new();
    let env_name = |s: &str| s.to_uppercase().replace(['-', '.'], "_");
    for (k, v) in &ov.env {
        let Some(rest) = k.strip_prefix("PIPE_") else {
            continue;
        };
        let Some((st, key)) = rest.split_once("__") else {
            continue;
        };
        // The environment is ambient: variables for stages of other pipelines are ignored.
        let Some(sname) = names.iter().find(|n| env_name(n) == st) else {
            continue;
        };
        env_params
            .entry(sname.clone())
            .or_default()
            .insert(key.to_lowercase(), parse_scalar(v));
    }

    // --set stage.key=value.
    let mut set_params: HashMap<String, Map<String, Value>> = HashMap::new();
    for s in &ov.sets {
        let Some((lhs, val)) = s.split_once('=') else {
            return Err(cfg(format!("--set {s}: expected `stage.key=value`")));
        };
        let found = names
            .iter()
            .filter(|n| lhs.starts_with(&format!("{n}.")))
            .max_by_key(|n| n.len());
        let Some(sname) = found else {
            let st = lhs.split('.').next().unwrap_or(lhs);
            return Err(cfg(format!(
                "--set {s}: no stage `{st}` in {fname}; {}",
                nearest(st, &names)
            )));
        };
        let key = &lhs[sname.len() + 1..];
        if key.is_empty() {
            return Err(cfg(format!("--set {s}: expected `stage.key=value`")));
        }
        set_params
            .entry(sname.clone())
            .or_default()
            .insert(key.to_string(), parse_scalar(val));
    }

    // Expansion.
    let mut nodes: Vec<Node> = Vec::new();
    // stage -> the instance ids others depend on (last epoch of each matrix point).
    let mut exported: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen_ids: BTreeSet<String> = BTreeSet::new();
    for (sname, st) in &stages {
        let (kind, kd) = &kinds[&st.kind];
        let info = kind.info();
        let loc = |key: &str| at(&fname, &text, &["stages", sname, key]);
        let stage_params =
            mapping_to_object(&st.params, &format!("{fname}: stage `{sname}` params"))?;

        // Matrix.
        let mut matrix: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        if let Some(m) = &st.matrix {
            if m.is_empty() {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: `matrix` is empty; give at least one key with values or remove it",
                    loc("matrix")
                )));
            }
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default().to_string();
                let vals = match v {
                    serde_yaml::Value::Sequence(s) => s.clone(),
                    other => vec![other.clone()],
                };
                if vals.is_empty() {
                    return Err(cfg(format!(
                        "{}: stage `{sname}`: matrix key `{key}` has no values; give a non-empty list",
                        at(&fname, &text, &["stages", sname, "matrix", &key])
                    )));
                }
                let mut jv = Vec::new();
                for x in &vals {
                    let j = yaml_to_json(x).map_err(|e| cfg(format!("{fname}: {e}")))?;
                    if j.is_object() || j.is_array() || j.is_null() {
                        return Err(cfg(format!(
                            "{}: stage `{sname}`: matrix key `{key}` values must be scalars",
                            at(&fname, &text, &["stages", sname, "matrix", &key])
                        )));
                    }
                    jv.push(j);
                }
                if !info.free_matrix_keys && !kd.keys.contains(&key) {
                    return Err(cfg(format!(
                        "{}: stage `{sname}`: matrix key `{key}` is not a parameter of kind `{}`; {} (see {})",
                        at(&fname, &text, &["stages", sname, "matrix", &key]),
                        info.name,
                        nearest(&key, &kd.keys),
                        kd.source
                    )));
                }
                matrix.insert(key, jv);
            }
        }
        let matrix_keys: Vec<String> = matrix.keys().cloned().collect();
        let allowed = |key: &String| {
            kd.keys.contains(key) || (info.free_matrix_keys && matrix_keys.contains(key))
        };
        let layers: [(&str, Option<&Map<String, Value>>); 4] = [
            (&fname, Some(&stage_params)),
            (&file_params_name, file_params.get(sname)),
            ("environment", env_params.get(sname)),
            ("--set", set_params.get(sname)),
        ];
        for (src, layer) in &layers {
            let Some(layer) = layer else { continue };
            for key in layer.keys() {
                if !allowed(key) {
                    let whr = match *src {
                        "environment" => format!(
                            "environment variable PIPE_{}__{}",
                            env_name(sname),
                            key.to_uppercase()
                        ),
                        "--set" => format!("--set {sname}.{key}"),
                        s if s == fname => at(&fname, &text, &["stages", sname, "params", key]),
                        s => at(s, "", &[]),
                    };
                    return Err(cfg(format!(
                        "{whr}: stage `{sname}`: unknown parameter `{key}` of kind `{}`; {} (see {})",
                        info.name,
                        nearest(key, &kd.keys),
                        kd.source
                    )));
                }
            }
        }

        let mut instances: Vec<Node> = Vec::new();
        for point in combinations(&matrix) {
            let mut fig = Figment::from(Serialized::defaults(&kd.compiled));
            if let Some(p) = &kd.local {
                fig = fig.merge(Yaml::file_exact(p));
            }
            if let Some(d) = defaults.get(&st.kind) {
                fig = fig.merge(Serialized::defaults(d));
            }
            fig = fig.merge(Serialized::defaults(&stage_params));
            fig = fig.merge(Serialized::defaults(&point));
            for (_, layer) in &layers[1..] {
                if let Some(l) = layer {
                    fig = fig.merge(Serialized::defaults(l));
                }
            }
            let mut params: Value = fig
                .extract()
                .map_err(|e| cfg(format!("{}: stage `{sname}`: {e}", loc("params"))))?;
            if params.is_null() {
                params = Value::Object(Map::new());
            }
            substitute(&mut params, &point);
            let base_id = instance_id(sname, &point);
            let ckpt_name = base_id.clone();
            let epochs = if info.per_epoch {
                match params.get("epochs").and_then(Value::as_u64) {
                    Some(n) if n >= 1 => Some(n),
                    _ => {
                        return Err(cfg(format!(
                            "{}: stage `{sname}`: parameter `epochs` must be a whole number ≥ 1 for kind `{}`",
                            loc("params"),
                            info.name
                        )))
                    }
                }
            } else {
                None
            };
            let mut needs: Vec<String> = Vec::new();
            for n in &st.needs {
                for id in &exported[n] {
                    if !needs.contains(id) {
                        needs.push(id.clone());
                    }
                }
            }
            match epochs {
                None => {
                    if let Err(e) = kind.check(&params) {
                        return Err(check_error(
                            *kind, &params, kd, &e, &fname, &text, sname, &base_id,
                        ));
                    }
                    instances.push(Node {
                        id: base_id,
                        stage: sname.clone(),
                        ckpt_name,
                        kind: *kind,
                        kind_name: info.name.to_string(),
                        params,
                        needs,
                        matrix: point.clone(),
                        epoch: None,
                    })
                }
                Some(n) => {
                    for e in 1..=n {
                        let mut p2 = point.clone();
                        p2.insert("epoch".into(), Value::from(e));
                        let id = instance_id(sname, &p2);
                        let mut params = params.clone();
                        if let Value::Object(m) = &mut params {
                            m.insert("epoch".into(), Value::from(e));
                        }
                        if e == 1 {
                            if let Err(msg) = kind.check(&params) {
                                return Err(check_error(
                                    *kind, &params, kd, &msg, &fname, &text, sname, &id,
                                ));
                            }
                        }
                        let mut nd = if e == 1 {
                            Vec::new()
                        } else {
                            let mut prev = p2.clone();
                            prev.insert("epoch".into(), Value::from(e - 1));
                            vec![instance_id(sname, &prev)]
                        };
                        nd.extend(needs.iter().cloned());
                        instances.push(Node {
                            id,
                            stage: sname.clone(),
                            ckpt_name: ckpt_name.clone(),
                            kind: *kind,
                            kind_name: info.name.to_string(),
                            params,
                            needs: nd,
                            matrix: point.clone(),
                            epoch: Some(e),
                        });
                    }
                }
            }
        }
        // Exported ids: the last epoch of each matrix point, in sorted id order.
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        for n in &instances {
            last.insert(n.ckpt_name.clone(), n.id.clone());
        }
        let mut ex: Vec<String> = last.into_values().collect();
        ex.sort_by(|a, b| natural_cmp(a, b));
        exported.insert(sname.clone(), ex);
        instances
            .sort_by(|a, b| natural_cmp(&a.ckpt_name, &b.ckpt_name).then(a.epoch.cmp(&b.epoch)));
        for n in &instances {
            if !seen_ids.insert(n.id.clone()) {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: two instances get the same id `{}` after expansion; make the matrix values distinct",
                    loc("matrix"),
                    n.id
                )));
            }
        }
        nodes.extend(instances);
    }

    Ok(Pipeline {
        name,
        seed: raw.seed,
        file: file.to_path_buf(),
        root: root.to_path_buf(),
        stages: names,
        nodes,
    })
}

/// A `check()` failure as one sentence naming the file position, the stage and the key: the
/// key is found by resetting one parameter at a time to its default until the check passes.
#[allow(clippy::too_many_arguments)]
fn check_error(
    kind: &dyn StageKind,
    params: &Value,
    kd: &KindDefaults,
    msg: &str,
    fname: &str,
    text: &str,
    sname: &str,
    id: &str,
) -> PipeError {
    let msg = msg.replace('\n', " ");
    let mut culprit = None;
    if let Value::Object(m) = params {
        for k in m.keys() {
            let mut q = m.clone();
            match kd.compiled.get(k) {
                Some(d) => {
                    q.insert(k.clone(), d.clone());
                }
                None => {
                    q.remove(k);
                }
            }
            if kind.check(&Value::Object(q)).is_ok() {
                culprit = Some(k.clone());
                break;
            }
        }
    }
    match culprit {
        Some(k) if !msg.contains(&format!("`{k}`")) => cfg(format!(
            "{}: stage `{id}`: parameter `{k}`: {msg}",
            at(fname, text, &["stages", sname, &k])
        )),
        Some(k) => cfg(format!(
            "{}: stage `{id}`: {msg}",
            at(fname, text, &["stages", sname, &k])
        )),
        None => cfg(format!(
            "{}: stage `{id}`: bad parameters: {msg}",
            at(fname, text, &["stages", sname, "params"])
        )),
    }
}

/// Reports the first cycle among stages' `needs` as `a -> b -> a`.
fn check_cycles(fname: &str, stages: &[(String, RawStage)]) -> Result<()> {
    let idx: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut color = vec![0u8; stages.len()];
    let mut stack: Vec<usize> = Vec::new();
    fn dfs(
        u: usize,
        stages: &[(String, RawStage)],
        idx: &HashMap<&str, usize>,
        color: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        color[u] = 1;
        stack.push(u);
        for n in &stages[u].1.needs {
            let v = idx[n.as_str()];
            if color[v] == 1 {
                let start = stack.iter().position(|&x| x == v).unwrap_or(0);
                let mut cyc = stack[start..].to_vec();
                cyc.push(v);
                return Some(cyc);
            }
            if color[v] == 0 {
                if let Some(c) = dfs(v, stages, idx, color, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        color[u] = 2;
        None
    }
    for u in 0..stages.len() {
        if color[u] == 0 {
            if let Some(c) = dfs(u, stages, &idx, &mut color, &mut stack) {
                let names: Vec<&str> = c.iter().map(|&i| stages[i].0.as_str()).collect();
                return Err(cfg(format!(
                    "{fname}: stage `{}`: `needs` form a cycle: {}; remove one of these needs",
                    names[0],
                    names.join(" -> ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_keys() {
        let t = "name: x\nstages:\n  a:\n    kind: command\n    params: { cmd: x, lr: 1 }\n";
        assert_eq!(locate(t, &["stages", "a", "params", "lr"]), Some((5, 23)));
    }

    #[test]
    fn ids_sort_keys() {
        let mut p = BTreeMap::new();
        p.insert("z".to_string(), Value::from(1));
        p.insert("a".to_string(), Value::from("x"));
        assert_eq!(instance_id("s", &p), "s@a=x,z=1");
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut ids = vec![
            "beam-eval@beam_width=10",
            "beam-eval@beam_width=5",
            "beam-eval@beam_width=1",
            "beam-eval@beam_width=05",
            "beam-eval@lr=0.001",
            "beam-eval@lr=0.0003",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            vec![
                "beam-eval@beam_width=1",
                "beam-eval@beam_width=05",
                "beam-eval@beam_width=5",
                "beam-eval@beam_width=10",
                "beam-eval@lr=0.0003",
                "beam-eval@lr=0.001",
            ]
        );
    }

    #[test]
    fn substitution_recurses_into_lists() {
        let mut v = serde_json::json!({"outs": ["o_${w}.txt"], "cmd": "echo ${w} ${w}"});
        let mut p = BTreeMap::new();
        p.insert("w".to_string(), Value::from(5));
        substitute(&mut v, &p);
        assert_eq!(v["outs"][0], "o_5.txt");
        assert_eq!(v["cmd"], "echo 5 5");
    }

    #[test]
    fn nearest_key() {
        let keys = vec!["lr".to_string(), "batch_size".to_string()];
        assert_eq!(nearest("batch_sise", &keys), "did you mean `batch_size`?");
    }
}
