//! Submitting and cancelling jobs: `sbatch --parsable` with a batch script on standard input,
//! `scancel`.

use super::{run, Result, SlurmError};
use std::path::PathBuf;

/// One batch job to submit.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    /// `--job-name`: identifies the project and the work (see [`super::find_jobs`]).
    pub name: String,
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem` in MiB.
    pub mem_mb: Option<u64>,
    /// `--time` in minutes (Slurm's granularity).
    pub time_min: Option<u64>,
    pub partition: Option<String>,
    pub account: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    pub gres: Option<String>,
    /// Jobs that must succeed first (`--dependency=afterok:…`).
    pub after_ok: Vec<u64>,
    /// Further `sbatch` flags, passed as given.
    pub extra: Vec<String>,
    /// `--output` (stdout and stderr); Slurm's `%j` is the job id.
    pub log: PathBuf,
    /// `--chdir`: where the job runs; the submitting folder when unset.
    pub workdir: Option<PathBuf>,
    /// The program and its arguments, run with `exec` by the batch script.
    pub command: Vec<String>,
}

/// Quotes one word for `sh`.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

impl JobSpec {
    /// The `sbatch` arguments (the script comes on standard input).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--parsable".to_string(),
            format!("--job-name={}", self.name),
            format!("--output={}", self.log.display()),
            "--kill-on-invalid-dep=yes".to_string(),
        ];
        if let Some(c) = self.cpus {
            a.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = self.mem_mb {
            a.push(format!("--mem={m}M"));
        }
        if let Some(t) = self.time_min {
            a.push(format!("--time={t}"));
        }
        if let Some(p) = &self.partition {
            a.push(format!("--partition={p}"));
        }
        if let Some(p) = &self.account {
            a.push(format!("--account={p}"));
        }
        if let Some(g) = &self.gres {
            a.push(format!("--gres={g}"));
        }
        if !self.after_ok.is_empty() {
            let ids: Vec<String> = self.after_ok.iter().map(|i| i.to_string()).collect();
            a.push(format!("--dependency=afterok:{}", ids.join(":")));
        }
        if let Some(d) = &self.workdir {
            a.push(format!("--chdir={}", d.display()));
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The batch script: `exec` of the command.
    pub fn script(&self) -> String {
        let words: Vec<String> = self.command.iter().map(|w| sh_quote(w)).collect();
        format!("#!/bin/sh\nexec {}\n", words.join(" "))
    }
}

/// Submits a job; its id.
pub fn submit(spec: &JobSpec) -> Result<u64> {
    if spec.command.is_empty() {
        return Err(SlurmError::Parse {
            cmd: "sbatch".into(),
            output: format!("job `{}` has no command", spec.name),
        });
    }
    if let Some(dir) = spec.log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SlurmError::Spawn {
            cmd: format!("mkdir {}", dir.display()),
            source,
        })?;
    }
    let out = run("sbatch", &spec.args(), Some(&spec.script()))?;
    // `--parsable` prints `id` or `id;cluster`
    let first = out.trim().split(';').next().unwrap_or("").trim();
    first.parse().map_err(|_| SlurmError::Parse {
        cmd: "sbatch --parsable".into(),
        output: out.trim().to_string(),
    })
}

/// Cancels jobs (`scancel`); unknown or finished ones are not an error.
pub fn cancel(ids: &[u64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let args: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    match run("scancel", &args, None) {
        Ok(_) => Ok(()),
        Err(SlurmError::Command { stderr, .. }) if stderr.contains("Invalid job id") => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_and_args() {
        let s = JobSpec {
            name: "pipe-x".into(),
            cpus: Some(2),
            mem_mb: Some(512),
            time_min: Some(10),
            gres: Some("gpu:1".into()),
            after_ok: vec![4, 5],
            log: "logs/%j.log".into(),
            command: vec!["pipe".into(), "it's".into(), "a b".into()],
            ..Default::default()
        };
        assert_eq!(s.script(), "#!/bin/sh\nexec pipe 'it'\\''s' 'a b'\n");
        let a = s.args();
        for want in [
            "--parsable",
            "--cpus-per-task=2",
            "--mem=512M",
            "--time=10",
            "--gres=gpu:1",
            "--dependency=afterok:4:5",
            "--kill-on-invalid-dep=yes",
            "--output=logs/%j.log",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
    }
}
