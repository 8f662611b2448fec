//! The `resources:` key of a stage and of `defaults.<kind>`: what a Slurm job of the stage asks
//! for (`cpus`, `mem_mb`, `time_min`, `gpus`, `partition`), checked key by key with
//! `file:line:col`, and layered built-in kind default → `defaults.<kind>.resources` → the
//! stage's `resources:`. Resources never enter a fingerprint or the lock file.

use super::names::nearest;
use super::parse::{cfg, Source};
use crate::error::Result;
use std::collections::BTreeMap;

/// Resources of one job; unset fields take the kind's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_min: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

impl Resources {
    /// The built-in default of a kind: `train` 2 CPUs, 4 GiB, 8 hours; the other heavy kinds
    /// (tokenize, decoding, embedding) 2 CPUs, 2 GiB, 2 hours; the light ones 1 CPU, 512 MiB,
    /// 30 minutes. No GPUs, the cluster's default partition.
    pub fn kind_default(kind: &str, heavy: bool) -> Resources {
        let (cpus, mem_mb, time_min) = match (kind, heavy) {
            ("train", _) => (2, 4096, 480),
            (_, true) => (2, 2048, 120),
            (_, false) => (1, 512, 30),
        };
        Resources {
            cpus: Some(cpus),
            mem_mb: Some(mem_mb),
            time_min: Some(time_min),
            gpus: None,
            partition: None,
        }
    }

    /// `self` over `base`, field by field.
    pub fn over(&self, base: &Resources) -> Resources {
        Resources {
            cpus: self.cpus.or(base.cpus),
            mem_mb: self.mem_mb.or(base.mem_mb),
            time_min: self.time_min.or(base.time_min),
            gpus: self.gpus.or(base.gpus),
            partition: self.partition.clone().or_else(|| base.partition.clone()),
        }
    }

    /// `cpus=2 mem=2048M time=240m`, for `pipe status` and messages.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(c) = self.cpus {
            v.push(format!("cpus={c}"));
        }
        if let Some(m) = self.mem_mb {
            v.push(format!("mem={m}M"));
        }
        if let Some(t) = self.time_min {
            v.push(format!("time={t}m"));
        }
        if let Some(g) = self.gpus {
            v.push(format!("gpus={g}"));
        }
        if let Some(p) = &self.partition {
            v.push(format!("partition={p}"));
        }
        v.join(" ")
    }
}

/// The keys a `resources:` map takes.
pub const KEYS: [&str; 5] = ["cpus", "mem_mb", "time_min", "gpus", "partition"];

/// An integer of at least `min`, or why not.
fn int(v: &serde_yaml::Value, min: u64) -> std::result::Result<u64, String> {
    match v.as_u64() {
        Some(n) if n >= min => Ok(n),
        _ => Err(format!(
            "must be a whole number of at least {min} (got {})",
            shown(v)
        )),
    }
}

fn shown(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{v:?}"))
}

/// Parses one `resources:` map written at key path `path` of the pipeline file; `what` names
/// its owner in messages (``stage `train` `` or `` `defaults.train` ``).
pub(crate) fn parse(
    src: &Source,
    path: &[&str],
    what: &str,
    v: &serde_yaml::Value,
) -> Result<Resources> {
    let mut r = Resources::default();
    let m = match v {
        serde_yaml::Value::Null => return Ok(r),
        serde_yaml::Value::Mapping(m) => m,
        other => {
            return Err(cfg(format!(
                "{}: {what}: `resources` must be a map like `{{ cpus: 2, mem_mb: 2048, time_min: 60 }}` (got {})",
                src.at(path),
                shown(other)
            )))
        }
    };
    let keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
    for (k, val) in m {
        let key = k.as_str().unwrap_or_default();
        let mut kp = path.to_vec();
        kp.push(key);
        let bad = |why: String| {
            cfg(format!(
                "{}: {what}: resource `{key}` {why}",
                super::locate::at_best(&src.fname, &src.text, &kp)
            ))
        };
        match key {
            "cpus" => {
                let n = int(val, 1).map_err(bad)?;
                if n > 4096 {
                    return Err(bad(format!("must be at most 4096 (got {n})")));
                }
                r.cpus = Some(n as u32)
            }
            "mem_mb" => r.mem_mb = Some(int(val, 1).map_err(bad)?),
            "time_min" => r.time_min = Some(int(val, 1).map_err(bad)?),
            "gpus" => r.gpus = Some(int(val, 0).map_err(bad)?.min(u32::MAX as u64) as u32),
            "partition" => match val.as_str() {
                Some(p)
                    if !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.,".contains(&b)) =>
                {
                    r.partition = Some(p.to_string())
                }
                _ => {
                    return Err(bad(format!(
                        "must be a partition name (letters, digits, `-_.,`; got {})",
                        shown(val)
                    )))
                }
            },
            _ => {
                return Err(cfg(format!(
                    "{}: {what}: unknown resource `{key}`; {} (resources: {})",
                    super::locate::at_best(&src.fname, &src.text, &kp),
                    nearest(key, &keys),
                    KEYS.join(", ")
                )))
            }
        }
    }
    Ok(r)
}

/// The resources of every stage: its kind's built-in default, `defaults.<kind>.resources`
/// over it, the stage's `resources:` over that.
pub(crate) fn layer(
    src: &Source,
    kinds: &BTreeMap<String, &'static dyn crate::stage::StageKind>,
) -> Result<BTreeMap<String, Resources>> {
    let mut per_kind: BTreeMap<&str, Resources> = BTreeMap::new();
    for (kind, v) in &src.kind_resources {
        let what = format!("`defaults.{kind}`");
        per_kind.insert(
            kind,
            parse(src, &["defaults", kind, "resources"], &what, v)?,
        );
    }
    let mut out = BTreeMap::new();
    for (sname, st) in &src.stages {
        let info = kinds[&st.kind].info();
        let mut r = Resources::kind_default(info.name, info.heavy);
        if let Some(d) = per_kind.get(st.kind.as_str()) {
            r = d.over(&r);
        }
        if let Some(v) = &st.resources {
            let what = format!("stage `{sname}`");
            r = parse(src, &["stages", sname, "resources"], &what, v)?.over(&r);
        }
        out.insert(sname.clone(), r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_values_layer_over_kind_defaults() {
        let r = Resources {
            cpus: Some(4),
            ..Default::default()
        }
        .over(&Resources::kind_default("infer", true));
        assert_eq!(r.cpus, Some(4));
        assert_eq!(r.mem_mb, Some(2048));
        assert_eq!(r.describe(), "cpus=4 mem=2048M time=120m");
        let light = Resources::kind_default("command", false);
        let train = Resources::kind_default("train", true);
        assert!(light.cpus < train.cpus && light.mem_mb < train.mem_mb);
        assert!(light.time_min < train.time_min);
    }
}
