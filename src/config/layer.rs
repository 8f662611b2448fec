//! Parameter layering with figment: kind defaults (built in, then a project-local
//! `stages/<kind>.yaml`) → pipeline `defaults.<kind>` → stage `params` → matrix point →
//! `--params FILE` → environment `PIPE_<STAGE>__<KEY>` → `--set`. Each layer remembers where
//! its values came from, so a bad value is blamed on its real source.

use super::error::Result;
use super::ids::shown;
use super::limits::{check_value, MAX_YAML_BYTES};
use super::locate::at;
use super::names::nearest;
use super::parse::{cfg, map_to_json, parse_value, yaml_error, Source};
use super::Overrides;
use crate::input_file::read_text;
use crate::stage::{self, StageKind};
use figment::providers::{Format, Serialized, Yaml};
use figment::Figment;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The default layer of one kind.
pub(crate) struct KindDefaults {
    /// Where the default layer comes from (for messages).
    pub source: String,
    /// Text of the project-local file, when there is one (for positions).
    local_text: Option<String>,
    /// Every parameter the kind takes.
    pub keys: Vec<String>,
    /// A project-local override file, merged with `Yaml::file_exact`.
    local: Option<PathBuf>,
    /// The built-in defaults.
    pub compiled: Value,
}

fn defaults_value(text: &str, source: &str) -> Result<Map<String, Value>> {
    let v: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| yaml_error(source, &e))?;
    match v {
        serde_yaml::Value::Null => Ok(Map::new()),
        serde_yaml::Value::Mapping(m) => map_to_json(&m).map_err(|e| {
            let path: Vec<&str> = e.path().iter().map(String::as_str).collect();
            cfg(format!("{}: {}", at(source, text, &path), e.sentence()))
        }),
        _ => Err(cfg(format!(
            "{source}: the defaults must be a map of parameters"
        ))),
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
    let (source, local, local_text) = if local.exists() {
        let source = format!("stages/{}.yaml", info.name);
        let t = read_text(&local, "a YAML file", MAX_YAML_BYTES)
            .map_err(|e| cfg(format!("cannot read {source}: {e}")))?;
        keys.extend(defaults_value(&t, &source)?.keys().cloned());
        (source, Some(local), Some(t))
    } else {
        (builtin, None, None)
    };
    Ok(KindDefaults {
        source,
        local_text,
        keys: keys.into_iter().collect(),
        local,
        compiled: Value::Object(compiled),
    })
}

/// Stage name → parameters of one layer.
type PerStage = HashMap<String, Map<String, Value>>;

/// Every layer above the kind defaults, with the origin of each value.
pub(crate) struct Layers {
    /// Kind name → (kind, its default layer).
    pub kinds: HashMap<String, (&'static dyn StageKind, KindDefaults)>,
    /// Pipeline `defaults.<kind>`.
    defaults: HashMap<String, Map<String, Value>>,
    /// `--params FILE`: its name as given, its text, and stage → params.
    file: Option<(String, String, PerStage)>,
    /// `PIPE_<STAGE>__<KEY>`: stage → params, and (stage, key) → `VAR=value`.
    env: HashMap<String, Map<String, Value>>,
    env_origin: HashMap<(String, String), String>,
    /// `--set`: stage → params, and (stage, key) → `--set stage.key=value`.
    set: HashMap<String, Map<String, Value>>,
    set_origin: HashMap<(String, String), String>,
}

/// The kind key that `key` misspells (one edit away, or equal but for case), if any.
fn near_miss<'a>(key: &str, own: &'a [String]) -> Option<&'a String> {
    if key.chars().count() < 3 || own.iter().any(|k| k == key) {
        return None;
    }
    own.iter().find(|k| {
        k.eq_ignore_ascii_case(key)
            || super::names::levenshtein(&k.to_lowercase(), &key.to_lowercase()) <= 1
    })
}

/// `PIPE_<STAGE>` part of an environment variable for a stage name.
fn env_name(s: &str) -> String {
    s.to_uppercase().replace(['-', '.'], "_")
}

/// The stage of `names` and the key a `PIPE_<STAGE>__<KEY>` variable sets, if it is one (the
/// environment is ambient: variables for stages of other pipelines are not).
pub(crate) fn env_target<'a>(var: &str, names: &'a [String]) -> Option<(&'a String, String)> {
    let (st, key) = var.strip_prefix("PIPE_")?.split_once("__")?;
    let sname = names.iter().find(|n| env_name(n) == st)?;
    Some((sname, key.to_lowercase()))
}

/// Warns about a `PIPE_<STAGE>__<KEY>` variable naming no stage of pipeline `fname` (with
/// stages `names`): the environment is ambient (it may hold variables for another pipeline's
/// stages), so it is a warning naming the variable, not an error like `--set`'s.
fn warn_unknown_stage(var: &str, names: &[String], fname: &str) {
    let Some((st, key)) = var.strip_prefix("PIPE_").and_then(|r| r.split_once("__")) else {
        return;
    };
    let env_names: Vec<String> = names.iter().map(|n| env_name(n)).collect();
    let hint = match super::names::closest(st, &env_names) {
        Some(c) => format!("did you mean PIPE_{c}__{key}?"),
        None => format!("its stages are {}", names.join(", ")),
    };
    eprintln!(
        "warning: {var}: {fname} has no stage `{}`, so this override (PIPE_<STAGE>__<KEY>) is \
         ignored; {hint}",
        st.to_lowercase(),
    );
}

/// The pipeline's `defaults:` per kind, each key checked against its kind (the kinds they name
/// are added to `kinds` with their defaults).
fn pipeline_defaults(
    root: &Path,
    src: &Source,
    all_kinds: &[String],
    kinds: &mut HashMap<String, (&'static dyn StageKind, KindDefaults)>,
) -> Result<HashMap<String, Map<String, Value>>> {
    let mut defaults: HashMap<String, Map<String, Value>> = HashMap::new();
    for (k, v) in &src.defaults {
        let kname = k.as_str().unwrap_or_default().to_string();
        let Some(kind) = stage::find(&kname) else {
            return Err(cfg(format!(
                "{}: `defaults` names unknown kind `{}`; {}",
                src.at(&["defaults", &kname]),
                shown(&kname),
                nearest(&kname, all_kinds)
            )));
        };
        let serde_yaml::Value::Mapping(m) = v else {
            return Err(cfg(format!(
                "{}: `defaults.{kname}` must be a map of parameters",
                src.at(&["defaults", &kname])
            )));
        };
        let obj = map_to_json(m).map_err(|e| {
            let mut path = vec!["defaults", kname.as_str()];
            path.extend(e.path().iter().map(String::as_str));
            cfg(format!(
                "{}: `defaults.{kname}`: {}",
                src.at(&path),
                e.sentence()
            ))
        })?;
        if !kinds.contains_key(&kname) {
            kinds.insert(kname.clone(), (kind, kind_defaults(root, kind)?));
        }
        let (kind, kd) = &kinds[&kname];
        for key in obj.keys() {
            if key.is_empty() {
                return Err(cfg(format!(
                    "{}: `defaults.{kname}`: a parameter name is empty (`\"\"`); give it a name",
                    src.at(&["defaults", &kname, key])
                )));
            }
            let user = kind.info().free_matrix_keys && near_miss(key, &kd.keys).is_none();
            if !kd.keys.contains(key) && !user {
                return Err(cfg(format!(
                    "{}: `defaults.{kname}`: unknown parameter `{}` of kind `{kname}`; {} (see {})",
                    src.at(&["defaults", &kname, key]),
                    shown(key),
                    nearest(key, &kd.keys),
                    kd.source
                )));
            }
        }
        defaults.insert(kname, obj);
    }
    Ok(defaults)
}

/// The `--params FILE` layer: its name, text and parameters per stage (stages checked against
/// the pipeline's `names`).
#[allow(clippy::type_complexity)]
fn params_file(
    root: &Path,
    src: &Source,
    ov: &Overrides,
    names: &[String],
) -> Result<Option<(String, String, HashMap<String, Map<String, Value>>)>> {
    if let Some(pf) = &ov.params_file {
        let pname = pf.display().to_string();
        let t = read_text(&root.join(pf), "a --params file", MAX_YAML_BYTES)
            .map_err(|e| cfg(format!("cannot read --params file {pname}: {e}")))?;
        let m: serde_yaml::Mapping = match serde_yaml::from_str::<Option<serde_yaml::Mapping>>(&t) {
            Ok(m) => m.unwrap_or_default(),
            Err(e) => return Err(yaml_error(&pname, &e)),
        };
        let mut per_stage = HashMap::new();
        for (k, v) in &m {
            let sname = k.as_str().unwrap_or_default().to_string();
            if !names.contains(&sname) {
                return Err(cfg(format!(
                    "{}: stage `{}` is not in {}; {}",
                    at(&pname, &t, &[&sname]),
                    shown(&sname),
                    src.fname,
                    nearest(&sname, names)
                )));
            }
            let serde_yaml::Value::Mapping(pm) = v else {
                return Err(cfg(format!(
                    "{}: `{sname}` must be a map of parameters",
                    at(&pname, &t, &[&sname])
                )));
            };
            let obj = map_to_json(pm).map_err(|e| {
                let mut path = vec![sname.as_str()];
                path.extend(e.path().iter().map(String::as_str));
                cfg(format!(
                    "{}: stage `{sname}`: parameter {}",
                    at(&pname, &t, &path),
                    e.sentence()
                ))
            })?;
            per_stage.insert(sname, obj);
        }
        return Ok(Some((pname, t, per_stage)));
    }
    Ok(None)
}

impl Layers {
    /// Resolves kinds, reads the defaults, the params file, the environment and `--set`.
    pub fn build(root: &Path, src: &Source, ov: &Overrides) -> Result<Layers> {
        let names: Vec<String> = src.stages.iter().map(|(n, _)| n.clone()).collect();
        let all_kinds: Vec<String> = stage::registry()
            .iter()
            .map(|k| k.info().name.to_string())
            .collect();
        let mut kinds: HashMap<String, (&'static dyn StageKind, KindDefaults)> = HashMap::new();
        for (sname, st) in &src.stages {
            if kinds.contains_key(&st.kind) {
                continue;
            }
            let Some(kind) = stage::find(&st.kind) else {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: unknown kind `{}`; {} (kinds: {})",
                    src.at(&["stages", sname, "kind"]),
                    st.kind,
                    nearest(&st.kind, &all_kinds),
                    all_kinds.join(", ")
                )));
            };
            kinds.insert(st.kind.clone(), (kind, kind_defaults(root, kind)?));
        }

        let defaults = pipeline_defaults(root, src, &all_kinds, &mut kinds)?;
        let file = params_file(root, src, ov, &names)?;

        // Environment PIPE_<STAGE>__<KEY>.
        let mut env: HashMap<String, Map<String, Value>> = HashMap::new();
        let mut env_origin = HashMap::new();
        let mut vars: Vec<&(String, String)> = ov.env.iter().collect();
        vars.sort();
        for (k, v) in vars {
            let Some((sname, key)) = env_target(k, &names) else {
                warn_unknown_stage(k, &names, &src.fname);
                continue;
            };
            let origin = format!("{k}={v}");
            check_value(k, v)?;
            let value = parse_value(v).map_err(|e| {
                cfg(format!(
                    "{origin}: stage `{sname}`: parameter {}",
                    e.sentence()
                ))
            })?;
            env_origin.insert((sname.clone(), key.clone()), origin);
            env.entry(sname.clone()).or_default().insert(key, value);
        }

        // --set stage.key=value.
        let mut set: HashMap<String, Map<String, Value>> = HashMap::new();
        let mut set_origin = HashMap::new();
        for s in &ov.sets {
            check_value(&format!("--set {}", shown(s)), s)?;
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
                    "--set {s}: no stage `{}` in {}; {}",
                    shown(st),
                    src.fname,
                    nearest(st, &names)
                )));
            };
            let key = &lhs[sname.len() + 1..];
            if key.is_empty() {
                return Err(cfg(format!("--set {s}: expected `stage.key=value`")));
            }
            let value = parse_value(val).map_err(|e| {
                cfg(format!(
                    "--set {s}: stage `{sname}`: parameter `{key}` {}",
                    e.sentence()
                ))
            })?;
            set_origin.insert((sname.clone(), key.to_string()), format!("--set {s}"));
            set.entry(sname.clone())
                .or_default()
                .insert(key.to_string(), value);
        }

        Ok(Layers {
            kinds,
            defaults,
            file,
            env,
            env_origin,
            set,
            set_origin,
        })
    }

    /// Rejects keys (in any layer of stage `sname`) that are not parameters of its kind. A kind
    /// with user parameters (`command`) takes any key in the pipeline file, except one a typo
    /// away from its own keys; the override layers may only set keys the file declares.
    pub fn check_keys(
        &self,
        src: &Source,
        sname: &str,
        kind: &str,
        stage_params: &Map<String, Value>,
        matrix_keys: &[String],
    ) -> Result<()> {
        let (k, kd) = &self.kinds[kind];
        let info = k.info();
        let unknown = |key: &str, valid: &[String]| {
            cfg(format!(
                "{}: stage `{sname}`: unknown parameter `{}` of kind `{}`; {} (see {})",
                self.origin(src, sname, kind, stage_params, &BTreeMap::new(), key),
                shown(key),
                info.name,
                nearest(key, valid),
                kd.source
            ))
        };
        let overrides: Vec<&Map<String, Value>> = [
            self.file.as_ref().and_then(|(_, _, m)| m.get(sname)),
            self.env.get(sname),
            self.set.get(sname),
        ]
        .into_iter()
        .flatten()
        .collect();
        // An empty name (user parameters may have any other) could never be set or
        // substituted.
        let layers = std::iter::once(stage_params).chain(overrides.iter().copied());
        if let Some(key) = layers.flat_map(|l| l.keys()).find(|k| k.is_empty()) {
            return Err(cfg(format!(
                "{}: stage `{sname}`: a parameter name is empty (`\"\"`); give it a name",
                self.origin(src, sname, kind, stage_params, &BTreeMap::new(), key),
            )));
        }
        if !info.free_matrix_keys {
            for key in std::iter::once(stage_params)
                .chain(overrides)
                .flat_map(|l| l.keys())
            {
                if !kd.keys.contains(key) {
                    return Err(unknown(key, &kd.keys));
                }
            }
            return Ok(());
        }
        // User parameters: any name in the file, but not a near miss of the kind's own keys.
        let declared: Vec<String> = kd
            .keys
            .iter()
            .chain(stage_params.keys())
            .chain(matrix_keys)
            .chain(self.defaults.get(kind).into_iter().flat_map(|d| d.keys()))
            .cloned()
            .collect();
        for key in stage_params.keys().chain(matrix_keys) {
            if near_miss(key, &kd.keys).is_some() {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: unknown parameter `{}` of kind `{}`; {} (a user \
                     parameter may have any name but one a letter away from {}) (see {})",
                    self.origin(src, sname, kind, stage_params, &BTreeMap::new(), key),
                    shown(key),
                    info.name,
                    nearest(key, &kd.keys),
                    kd.keys
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    kd.source
                )));
            }
        }
        for key in overrides.iter().flat_map(|l| l.keys()) {
            if !declared.contains(key) {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: unknown parameter `{}` (not declared by the stage); \
                     {} (declare it in the stage's `params` to set it from the command line)",
                    self.origin(src, sname, kind, stage_params, &BTreeMap::new(), key),
                    shown(key),
                    nearest(key, &declared)
                )));
            }
        }
        Ok(())
    }

    /// The value the override layers (`--params` file, environment, `--set`) give `key` of
    /// stage `sname`, the highest one, with where it comes from.
    pub fn override_of(&self, sname: &str, key: &str) -> Option<(&Value, String)> {
        let sk = (sname.to_string(), key.to_string());
        if let Some(v) = self.set.get(sname).and_then(|m| m.get(key)) {
            return Some((v, self.set_origin.get(&sk).cloned().unwrap_or_default()));
        }
        if let Some(v) = self.env.get(sname).and_then(|m| m.get(key)) {
            return Some((v, self.env_origin.get(&sk).cloned().unwrap_or_default()));
        }
        let (pname, t, m) = self.file.as_ref()?;
        let v = m.get(sname)?.get(key)?;
        Some((v, at(pname, t, &[sname, key])))
    }

    /// Merges every layer for one instance of stage `sname` at matrix `point`.
    pub fn merge(
        &self,
        sname: &str,
        kind: &str,
        stage_params: &Map<String, Value>,
        point: &BTreeMap<String, Value>,
    ) -> std::result::Result<Value, String> {
        let kd = &self.kinds[kind].1;
        let mut fig = Figment::from(Serialized::defaults(&kd.compiled));
        if let Some(p) = &kd.local {
            fig = fig.merge(Yaml::file_exact(p));
        }
        if let Some(d) = self.defaults.get(kind) {
            fig = fig.merge(Serialized::defaults(d));
        }
        fig = fig.merge(Serialized::defaults(stage_params));
        fig = fig.merge(Serialized::defaults(point));
        let upper = [
            self.file.as_ref().and_then(|(_, _, m)| m.get(sname)),
            self.env.get(sname),
            self.set.get(sname),
        ];
        for l in upper.into_iter().flatten() {
            fig = fig.merge(Serialized::defaults(l));
        }
        let v: Value = fig.extract().map_err(|e| format!("{}: {e}", kd.source))?;
        Ok(if v.is_null() {
            Value::Object(Map::new())
        } else {
            v
        })
    }

    /// Where the value of `key` for stage `sname` comes from: the highest layer that sets it,
    /// as `--set s.k=v`, `PIPE_S__K=v`, `FILE:line:col` or a position in the pipeline file.
    pub fn origin(
        &self,
        src: &Source,
        sname: &str,
        kind: &str,
        stage_params: &Map<String, Value>,
        point: &BTreeMap<String, Value>,
        key: &str,
    ) -> String {
        let sk = (sname.to_string(), key.to_string());
        if let Some(o) = self.set_origin.get(&sk) {
            return o.clone();
        }
        if let Some(o) = self.env_origin.get(&sk) {
            return o.clone();
        }
        if let Some((pname, t, m)) = &self.file {
            if m.get(sname).is_some_and(|p| p.contains_key(key)) {
                return at(pname, t, &[sname, key]);
            }
        }
        if point.contains_key(key) {
            return src.at(&["stages", sname, "matrix", key]);
        }
        if stage_params.contains_key(key) {
            return src.at(&["stages", sname, "params", key]);
        }
        if self.defaults.get(kind).is_some_and(|d| d.contains_key(key)) {
            return src.at(&["defaults", kind, key]);
        }
        let kd = &self.kinds[kind].1;
        match &kd.local_text {
            Some(t) if t.contains(key) => at(&kd.source, t, &[key]),
            _ => src.at_stage(sname, "params"),
        }
    }
}
