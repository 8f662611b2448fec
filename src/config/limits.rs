//! Limits on what a pipeline file and its overrides may make pipe read or build, checked before
//! anything large is read or allocated: the size of YAML files (pipeline, `--params`, project
//! `stages/<kind>.yaml`), of one `--set` or environment value, and the number of instances the
//! stages expand into (configurable with `PIPE_MAX_INSTANCES`). Every refusal names the value and
//! the limit.

use super::parse::cfg;
use crate::error::{PipeError, Result};

/// Largest YAML file pipe reads (a pipeline of 10,000 stages is about 1.5 MiB).
pub const MAX_YAML_BYTES: u64 = 16 << 20;

/// Largest value of one `--set stage.key=value` or `PIPE_<STAGE>__<KEY>=value`.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// Instances a pipeline may expand into unless `PIPE_MAX_INSTANCES` says otherwise.
pub const DEFAULT_MAX_INSTANCES: u64 = 10_000;

/// The variable that sets the instance limit.
pub const MAX_INSTANCES_ENV: &str = "PIPE_MAX_INSTANCES";

/// The instance limit: `PIPE_MAX_INSTANCES` from `env` (a whole number ≥ 1), else the default.
pub fn max_instances(env: &[(String, String)]) -> Result<u64> {
    let Some((_, v)) = env.iter().find(|(k, _)| k == MAX_INSTANCES_ENV) else {
        return Ok(DEFAULT_MAX_INSTANCES);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(cfg(format!(
            "{MAX_INSTANCES_ENV}={v}: expected a whole number ≥ 1 (the most instances a pipeline \
             may expand into; default {DEFAULT_MAX_INSTANCES})"
        ))),
    }
}

/// A `--set` or environment value longer than [`MAX_VALUE_BYTES`]: `origin` is how it was given
/// (`--set a.b=…` or the variable's name).
pub fn check_value(origin: &str, value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(cfg(format!(
            "{origin}: the value is {} bytes long, more than the limit of {MAX_VALUE_BYTES} bytes \
             for one value; put large values in the pipeline file or a --params file",
            value.len()
        )));
    }
    Ok(())
}

/// Counts instances against the limit as stages are expanded, before each stage's instances
/// are built.
pub(crate) struct InstanceBudget {
    limit: u64,
    used: u64,
}

impl InstanceBudget {
    pub fn new(limit: u64) -> Self {
        InstanceBudget { limit, used: 0 }
    }

    /// Checks that `n` more instances of stage `stage` fit (`None`: a count beyond 64 bits);
    /// `what` says where they come from ("its matrix of 32 × 32 × 32 × 32 points") and `at`
    /// is the position to blame.
    pub fn check(&self, n: Option<u64>, at: &str, stage: &str, what: &str) -> Result<u64> {
        match n.and_then(|n| n.checked_add(self.used)) {
            Some(t) if t <= self.limit => Ok(t),
            _ => Err(self.refusal(n, at, stage, what)),
        }
    }

    /// [`InstanceBudget::check`], then counts them.
    pub fn take(&mut self, n: Option<u64>, at: &str, stage: &str, what: &str) -> Result<()> {
        self.used = self.check(n, at, stage, what)?;
        Ok(())
    }

    fn refusal(&self, n: Option<u64>, at: &str, stage: &str, what: &str) -> PipeError {
        let n = n.map_or_else(|| "more than 18446744073709551615".to_string(), group);
        let before = if self.used > 0 {
            format!(
                " (after {} instances of the stages before it)",
                group(self.used)
            )
        } else {
            String::new()
        };
        cfg(format!(
            "{at}: stage `{stage}`: {what} expands into {n} instances{before}, more than the limit \
             of {} instances per pipeline; shrink it, or raise the limit with \
             {MAX_INSTANCES_ENV}=N if the machine can plan that many",
            group(self.limit)
        ))
    }
}

/// `1048576` as `1,048,576`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_across_stages_and_names_the_limit() {
        let mut b = InstanceBudget::new(10);
        b.take(Some(6), "p.yaml:3:3", "a", "its matrix").unwrap();
        let e = b
            .take(Some(5), "p.yaml:4:3", "b", "its matrix of 5 points")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.yaml:4:3: stage `b`: its matrix of 5 points expands into 5 instances (after 6 instances"),
            "{e}"
        );
        assert!(
            e.contains("limit of 10 instances") && e.contains(MAX_INSTANCES_ENV),
            "{e}"
        );
        assert!(b
            .take(None, "f", "c", "x")
            .unwrap_err()
            .to_string()
            .contains("more than 18446744073709551615"));
        b.take(Some(4), "f", "c", "x").unwrap();
        assert_eq!(group(1_048_576), "1,048,576");
        assert_eq!(group(999), "999");
    }

    #[test]
    fn the_limit_comes_from_the_environment() {
        assert_eq!(max_instances(&[]).unwrap(), DEFAULT_MAX_INSTANCES);
        let env = |v: &str| vec![(MAX_INSTANCES_ENV.to_string(), v.to_string())];
        assert_eq!(max_instances(&env("50000")).unwrap(), 50_000);
        for bad in ["0", "-3", "lots"] {
            let e = max_instances(&env(bad)).unwrap_err().to_string();
            assert!(e.contains(MAX_INSTANCES_ENV) && e.contains(bad), "{e}");
        }
        assert!(check_value("--set a.b=…", &"x".repeat(MAX_VALUE_BYTES + 1)).is_err());
        assert!(check_value("--set a.b=1", "1").is_ok());
    }
}
