//! Expansion of stage declarations into instances (the nodes of the DAG): every combination of
//! a stage's matrix, and one node per epoch for per-epoch kinds, with `${key}` substitution,
//! parameter checks blamed on the layer the bad value came from, and safe ids.

use super::ids::{instance_id, natural_cmp, scalar_text, shown, unsafe_part, MAX_ID_BYTES};
use super::layer::Layers;
use super::limits::InstanceBudget;
use super::parse::{cfg, to_json, RawStage, Source};
use super::Node;
use crate::error::{PipeError, Result};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// Replaces `${key}` by matrix values in every string of `v`.
pub(crate) fn substitute(v: &mut Value, vars: &BTreeMap<String, Value>) {
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

/// The `${key}` variables of an instance: its matrix point; for kinds with user parameters
/// (`command`), every scalar parameter too (the merged value, overrides included).
fn substitution_vars(
    user_params: bool,
    params: &Value,
    point: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut vars = point.clone();
    if let (true, Value::Object(m)) = (user_params, params) {
        for (k, v) in m {
            if !(v.is_object() || v.is_array() || v.is_null()) {
                vars.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    vars
}

/// A stage's `params` as JSON, non-finite numbers refused at their line.
pub(crate) fn stage_params(src: &Source, sname: &str, st: &RawStage) -> Result<Map<String, Value>> {
    match to_json(&serde_yaml::Value::Mapping(st.params.clone())) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Ok(Map::new()),
        Err(e) => {
            let mut path = vec!["stages", sname, "params"];
            path.extend(e.path().iter().map(String::as_str));
            Err(cfg(format!(
                "{}: stage `{sname}`: parameter {}",
                src.at(&path),
                e.sentence()
            )))
        }
    }
}

/// The matrix of a stage: key → values, checked (scalars, safe in ids, known keys).
fn matrix(
    src: &Source,
    layers: &Layers,
    sname: &str,
    st: &RawStage,
) -> Result<BTreeMap<String, Vec<Value>>> {
    let (kind, kd) = &layers.kinds[&st.kind];
    let info = kind.info();
    let mut matrix: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let Some(m) = &st.matrix else {
        return Ok(matrix);
    };
    if m.is_empty() {
        return Err(cfg(format!(
            "{}: stage `{sname}`: `matrix` is empty; give at least one key with values or remove it",
            src.at_stage(sname, "matrix")
        )));
    }
    for (k, v) in m {
        let key = match k {
            serde_yaml::Value::String(s) => s.clone(),
            other => to_json(other).map(|j| scalar_text(&j)).unwrap_or_default(),
        };
        let loc = || src.at(&["stages", sname, "matrix", &key]);
        if let Some(why) = unsafe_part(&key).or_else(|| {
            key.contains(['@', ',', '='])
                .then_some("contains `@`, `,` or `=`, which separate id parts")
        }) {
            return Err(cfg(format!(
                "{}: stage `{sname}`: matrix key `{}` {why}; matrix keys become part of instance ids",
                loc(),
                shown(&key)
            )));
        }
        let vals = match v {
            serde_yaml::Value::Sequence(s) => s.clone(),
            other => vec![other.clone()],
        };
        if vals.is_empty() {
            return Err(cfg(format!(
                "{}: stage `{sname}`: matrix key `{key}` has no values; give a non-empty list",
                loc()
            )));
        }
        let mut jv = Vec::new();
        for x in &vals {
            let j = to_json(x).map_err(|e| {
                cfg(format!(
                    "{}: stage `{sname}`: matrix key `{key}`: {}",
                    loc(),
                    e.sentence()
                ))
            })?;
            if j.is_object() || j.is_array() || j.is_null() {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: matrix key `{key}` values must be scalars",
                    loc()
                )));
            }
            let text = scalar_text(&j);
            if let Some(why) = unsafe_part(&text) {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: matrix key `{key}`, value `{}`: the value {why}; matrix values become part of instance ids and folder names",
                    loc(),
                    shown(&text)
                )));
            }
            jv.push(j);
        }
        if !info.free_matrix_keys && !kd.keys.contains(&key) {
            return Err(cfg(format!(
                "{}: stage `{sname}`: matrix key `{key}` is not a parameter of kind `{}`; {} (see {})",
                loc(),
                info.name,
                super::names::nearest(&key, &kd.keys),
                kd.source
            )));
        }
        matrix.insert(key, jv);
    }
    // An override of a matrix key (`--set`, `--params`, `PIPE_<STAGE>__<KEY>`) runs exactly
    // that point: its id, `${key}`, the parameters and the record all carry the value that ran.
    for (key, vals) in matrix.iter_mut() {
        let Some((v, origin)) = layers.override_of(sname, key) else {
            continue;
        };
        if v.is_object() || v.is_array() || v.is_null() {
            return Err(cfg(format!(
                "{origin}: stage `{sname}`: `{key}` is a matrix key of this stage (values {}); \
                 an override runs exactly one point, so give one scalar value, or change the \
                 matrix in {}",
                vals.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
                src.at(&["stages", sname, "matrix", key])
            )));
        }
        if let Some(why) = unsafe_part(&scalar_text(v)) {
            return Err(cfg(format!(
                "{origin}: stage `{sname}`: matrix key `{key}`, value `{}`: the value {why}; \
                 matrix values become part of instance ids and folder names",
                shown(&scalar_text(v))
            )));
        }
        *vals = vec![v.clone()];
    }
    Ok(matrix)
}

/// One matrix point of a stage with its merged parameters and, for per-epoch kinds, its
/// number of epochs.
struct Point {
    point: BTreeMap<String, Value>,
    params: Value,
    epochs: Option<u64>,
}

/// "its matrix of 32 × 32 points", for messages about the number of instances.
fn matrix_words(matrix: &BTreeMap<String, Vec<Value>>) -> String {
    if matrix.is_empty() {
        return "it".into();
    }
    let sizes: Vec<String> = matrix.values().map(|v| v.len().to_string()).collect();
    format!("its matrix of {} points", sizes.join(" × "))
}

/// Expands the stages, taken in `order` (a topological order of their `needs`), into nodes, at
/// most `max_instances` of them: each stage's count is checked before its instances are built.
pub(crate) fn expand(
    src: &Source,
    layers: &Layers,
    order: &[usize],
    max_instances: u64,
) -> Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::new();
    // stage -> the instance ids others depend on (last epoch of each matrix point).
    let mut exported: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen_ids: BTreeSet<String> = BTreeSet::new();
    let mut budget = InstanceBudget::new(max_instances);
    for &si in order {
        let (sname, st) = &src.stages[si];
        let params_map = stage_params(src, sname, st)?;
        let matrix = matrix(src, layers, sname, st)?;
        let matrix_keys: Vec<String> = matrix.keys().cloned().collect();
        layers.check_keys(src, sname, &st.kind, &params_map, &matrix_keys)?;

        let mut needs: Vec<String> = Vec::new();
        for n in &st.needs {
            for id in exported.get(n).into_iter().flatten() {
                if !needs.contains(id) {
                    needs.push(id.clone());
                }
            }
        }

        let points = points(src, layers, sname, st, &params_map, &matrix, &mut budget)?;
        let mut instances = instances(src, layers, sname, st, &params_map, points, &needs)?;
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
            if n.id.len() > MAX_ID_BYTES {
                return Err(cfg(format!(
                    "{}: stage `{}`: instance id `{}` is {} bytes long; ids become folder names and may be at most {MAX_ID_BYTES} bytes: shorten the stage name or the matrix values",
                    src.at(&["stages", sname]),
                    shown(sname),
                    shown(&n.id),
                    n.id.len()
                )));
            }
            if !seen_ids.insert(n.id.clone()) {
                return Err(cfg(format!(
                    "{}: stage `{sname}`: two instances get the same id `{}` after expansion; make the matrix values distinct",
                    src.at_stage(sname, "matrix"),
                    n.id
                )));
            }
        }
        nodes.extend(instances);
    }
    Ok(nodes)
}

/// The matrix points of a stage with their merged parameters (and epochs), after checking that
/// the instances they make fit in `budget`: the number of points before any is built, the
/// total number of epochs before any epoch node is.
fn points(
    src: &Source,
    layers: &Layers,
    sname: &str,
    st: &RawStage,
    params_map: &Map<String, Value>,
    matrix: &BTreeMap<String, Vec<Value>>,
    budget: &mut InstanceBudget,
) -> Result<Vec<Point>> {
    let info = layers.kinds[&st.kind].0.info();
    let origin = |point: &BTreeMap<String, Value>, key: &str| {
        layers.origin(src, sname, &st.kind, params_map, point, key)
    };
    let n_points = matrix
        .values()
        .try_fold(1u64, |a, v| a.checked_mul(v.len() as u64));
    let at = src.at_stage(sname, "matrix");
    let what = matrix_words(matrix);
    if info.per_epoch {
        budget.check(n_points, &at, sname, &what)?;
    } else {
        budget.take(n_points, &at, sname, &what)?;
    }
    let mut out = Vec::new();
    let mut epochs_total: Option<u64> = Some(0);
    for point in combinations(matrix) {
        let mut params = layers
            .merge(sname, &st.kind, params_map, &point)
            .map_err(|e| cfg(format!("{e} (stage `{sname}`)")))?;
        let vars = substitution_vars(info.free_matrix_keys, &params, &point);
        substitute(&mut params, &vars);
        let epochs = if info.per_epoch {
            match params.get("epochs").and_then(Value::as_u64) {
                Some(n) if n >= 1 => Some(n),
                _ => {
                    return Err(cfg(format!(
                        "{}: stage `{sname}`: parameter `epochs` must be a whole number ≥ 1 for kind `{}`",
                        origin(&point, "epochs"),
                        info.name
                    )))
                }
            }
        } else {
            None
        };
        epochs_total = epochs_total.and_then(|t| t.checked_add(epochs.unwrap_or(0)));
        out.push(Point {
            point,
            params,
            epochs,
        });
    }
    if let Some(first) = out.first().filter(|_| info.per_epoch) {
        let at = origin(&first.point, "epochs");
        let what = match (matrix.is_empty(), first.epochs) {
            (true, Some(e)) => format!("`epochs: {e}`"),
            _ => format!("{what}, with their `epochs`,"),
        };
        budget.take(epochs_total, &at, sname, &what)?;
    }
    Ok(out)
}

/// The nodes of one stage: one per point, or one per epoch of each point for per-epoch kinds,
/// each point's parameters checked by its kind.
fn instances(
    src: &Source,
    layers: &Layers,
    sname: &str,
    st: &RawStage,
    params_map: &Map<String, Value>,
    points: Vec<Point>,
    needs: &[String],
) -> Result<Vec<Node>> {
    let (kind, _) = &layers.kinds[&st.kind];
    let info = kind.info();
    let mut instances: Vec<Node> = Vec::new();
    for Point {
        point,
        params,
        epochs,
    } in points
    {
        let base_id = instance_id(sname, &point);
        let ckpt_name = base_id.clone();
        let check = |params: &Value, id: &str| -> Result<()> {
            kind.check(params).map_err(|e| {
                check_error(layers, &st.kind, params, &e, id, |k| {
                    layers.origin(src, sname, &st.kind, params_map, &point, k)
                })
            })
        };
        let node = |id: String, params: Value, needs: Vec<String>, epoch: Option<u64>| Node {
            id,
            stage: sname.to_string(),
            ckpt_name: ckpt_name.clone(),
            kind: *kind,
            kind_name: info.name.to_string(),
            params,
            needs,
            matrix: point.clone(),
            epoch,
        };
        let Some(n) = epochs else {
            check(&params, &base_id)?;
            instances.push(node(base_id, params, needs.to_vec(), None));
            continue;
        };
        for e in 1..=n {
            let mut p2 = point.clone();
            p2.insert("epoch".into(), Value::from(e));
            let id = instance_id(sname, &p2);
            let mut params = params.clone();
            if let Value::Object(m) = &mut params {
                m.insert("epoch".into(), Value::from(e));
            }
            if e == 1 {
                check(&params, &id)?;
            }
            let mut nd = if e == 1 {
                Vec::new()
            } else {
                let mut prev = p2.clone();
                prev.insert("epoch".into(), Value::from(e - 1));
                vec![instance_id(sname, &prev)]
            };
            nd.extend(needs.iter().cloned());
            instances.push(node(id, params, nd, Some(e)));
        }
    }
    Ok(instances)
}

/// A `check()` failure as one sentence naming the source of the bad value, the stage and the
/// key: the key is found by resetting one parameter at a time to its default until the check
/// passes.
fn check_error(
    layers: &Layers,
    kind_name: &str,
    params: &Value,
    msg: &str,
    id: &str,
    origin: impl Fn(&str) -> String,
) -> PipeError {
    let (kind, kd) = &layers.kinds[kind_name];
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
            origin(&k)
        )),
        Some(k) => cfg(format!("{}: stage `{id}`: {msg}", origin(&k))),
        None => cfg(format!(
            "{}: stage `{id}`: bad parameters: {msg}",
            origin("params")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_recurses_into_lists() {
        let mut v = serde_json::json!({"outs": ["o_${w}.txt"], "cmd": "echo ${w} ${w}"});
        let mut p = BTreeMap::new();
        p.insert("w".to_string(), Value::from(5));
        substitute(&mut v, &p);
        assert_eq!(v["outs"][0], "o_5.txt");
        assert_eq!(v["cmd"], "echo 5 5");
    }
}
