//! What a Slurm job asks for: CPUs, memory, time, GPUs and partition. Built-in per-kind
//! defaults (heavy kinds ask for more) live here; `config::resources` layers the pipeline's
//! `defaults.<kind>.resources` and each stage's `resources:` over them.

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
