//! Submitting and cancelling jobs: `sbatch --parsable` with a batch script on standard input,
//! `scancel`, both retried while the controller is busy or restarting. A submission whose
//! answer was lost (the controller took the job, then the reply timed out) is not submitted
//! twice: each carries a token in its `--comment`, and before trying again the client looks
//! for a job with that token.

use super::command::{run, shown, CallOpts};
use super::retry::{retrying, Patience};
use super::{Result, SlurmError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

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
        self.args_with_token("")
    }

    /// The arguments with a submission token as `--comment` (none when empty; a `--comment` in
    /// `extra` comes later and wins).
    fn args_with_token(&self, token: &str) -> Vec<String> {
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
        if !token.is_empty() {
            a.push(format!("--comment={token}"));
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

/// A token no other submission of any process carries: pid, a counter and the clock.
fn token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "pipe-submit-{}-{}-{t}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Parses `sbatch --parsable`'s `id` or `id;cluster`.
fn parse_id(out: &str) -> Result<u64> {
    let first = out.trim().split(';').next().unwrap_or("").trim();
    first.parse().map_err(|_| SlurmError::Parse {
        cmd: "sbatch --parsable".into(),
        output: out.trim().to_string(),
    })
}

/// The job an earlier attempt of this submission created, if the controller has it: the
/// job of this user and name whose comment is `token` (or, when `extra` replaced the comment,
/// the newest unfinished job of that name).
fn submitted_before(spec: &JobSpec, token: &str) -> Result<Option<u64>> {
    let args: Vec<String> = [
        "-h",
        "--me",
        "-t",
        "all",
        &format!("--name={}", spec.name),
        "-O",
        "JobID:|,State:|,Comment:",
    ]
    .map(String::from)
    .to_vec();
    let out = run("squeue", &args, None, CallOpts::write())?;
    let own_comment = spec.extra.iter().any(|e| e.starts_with("--comment"));
    let mut found = None;
    for l in out.lines() {
        let f: Vec<&str> = l.splitn(3, '|').collect();
        let (Some(id), Some(state), Some(comment)) = (
            f.first().and_then(|i| i.trim().parse::<u64>().ok()),
            f.get(1),
            f.get(2),
        ) else {
            continue;
        };
        let ours = if own_comment {
            !super::JobState::parse(state).is_terminal()
        } else {
            comment.trim() == token
        };
        if ours {
            found = found.max(Some(id));
        }
    }
    Ok(found)
}

/// Submits a job; its id. Retried while the controller is busy or restarting (for
/// `PIPE_SLURM_PATIENCE`); an attempt whose reply was lost is found by its token, not repeated.
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
    let token = token();
    let args = spec.args_with_token(&token);
    let script = spec.script();
    let mut tried = false;
    retrying(
        &format!("sbatch --job-name={}", spec.name),
        Patience::from_env(),
        false,
        || {
            if tried {
                if let Some(id) = submitted_before(spec, &token)? {
                    eprintln!(
                        "slurm: job {id} ({}) was submitted by an earlier attempt",
                        spec.name
                    );
                    return Ok(id);
                }
            }
            tried = true;
            parse_id(&run("sbatch", &args, Some(&script), CallOpts::write())?)
        },
    )
}

/// Cancels jobs (`scancel`); unknown or finished ones are not an error. Retried while the
/// controller is busy or restarting.
pub fn cancel(ids: &[u64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let args: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    retrying(
        &shown("scancel", &args),
        Patience::from_env(),
        false,
        || match run("scancel", &args, None, CallOpts::write()) {
            Ok(_) => Ok(()),
            Err(SlurmError::Command { stderr, .. })
                if stderr
                    .lines()
                    .all(|l| l.trim().is_empty() || l.contains("Invalid job id")) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        },
    )
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
