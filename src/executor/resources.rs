//! What a Slurm job asks for: CPUs, memory, time, GPUs and partition, from per-kind defaults
//! (heavy kinds ask for more) with the pipeline's per-stage `executor.resources` over them.

use crate::config::Node;

/// Resources of one job; unset fields take the kind's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpus: Option<u32>,
    pub mem_mb: Option<u64>,
    pub time_min: Option<u64>,
    pub gpus: Option<u32>,
    pub partition: Option<String>,
}

impl Resources {
    /// The defaults of a kind: heavy kinds (training, decoding, embedding) 2 CPUs, 2 GiB,
    /// 4 hours; the others 1 CPU, 512 MiB, 30 minutes.
    pub fn kind_default(heavy: bool) -> Resources {
        if heavy {
            Resources {
                cpus: Some(2),
                mem_mb: Some(2048),
                time_min: Some(240),
                gpus: None,
                partition: None,
            }
        } else {
            Resources {
                cpus: Some(1),
                mem_mb: Some(512),
                time_min: Some(30),
                gpus: None,
                partition: None,
            }
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

    /// The resources of an instance: the per-instance entry (by id), else the stage's, over
    /// the kind's defaults.
    pub fn for_node(
        n: &Node,
        per_stage: &std::collections::BTreeMap<String, Resources>,
    ) -> Resources {
        let base = Resources::kind_default(n.kind.info().heavy);
        match per_stage.get(&n.id).or_else(|| per_stage.get(&n.stage)) {
            Some(r) => r.over(&base),
            None => base,
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
        .over(&Resources::kind_default(true));
        assert_eq!(r.cpus, Some(4));
        assert_eq!(r.mem_mb, Some(2048));
        assert_eq!(r.describe(), "cpus=4 mem=2048M time=240m");
        assert!(Resources::kind_default(false).cpus < Resources::kind_default(true).cpus);
    }
}
