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

/// One element of a job array: its command and, optionally, its own output file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Task {
    pub command: Vec<String>,
    /// Where the element's stdout and stderr go (the job's `--output` when None).
    pub log: Option<PathBuf>,
}

/// One batch job, or one job array, to submit.
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

/// A job array: the settings of `job` (its `command` unused), element `i` running `tasks[i]`.
#[derive(Debug, Clone, Default)]
pub struct ArraySpec {
    pub job: JobSpec,
    pub tasks: Vec<Task>,
    /// At most this many elements running at once (`--array=0-N%limit`).
    pub limit: Option<u32>,
}

impl ArraySpec {
    /// The `sbatch` arguments (the script comes on standard input).
    pub fn args(&self) -> Vec<String> {
        self.job.args_with(Some(self), "")
    }

    /// The batch script: the element's command, chosen by `SLURM_ARRAY_TASK_ID`, its output
    /// redirected to its own log.
    pub fn script(&self) -> String {
        let mut s = String::from("#!/bin/sh\ncase \"$SLURM_ARRAY_TASK_ID\" in\n");
        for (i, t) in self.tasks.iter().enumerate() {
            let redirect = t
                .log
                .as_ref()
                .map(|l| format!("exec >{} 2>&1; ", sh_quote(&l.display().to_string())))
                .unwrap_or_default();
            s.push_str(&format!("  {i}) {redirect}exec {} ;;\n", words(&t.command)));
        }
        s.push_str(
            "esac\necho \"pipe: no element $SLURM_ARRAY_TASK_ID in this array\" >&2\nexit 2\n",
        );
        s
    }
}

/// A command line for `sh`.
fn words(c: &[String]) -> String {
    c.iter().map(|w| sh_quote(w)).collect::<Vec<_>>().join(" ")
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
        self.args_with(None, "")
    }

    /// The arguments, for an array when `array`, with a submission token as `--comment` (none
    /// when empty; a `--comment` in `extra` comes later and wins).
    fn args_with(&self, array: Option<&ArraySpec>, token: &str) -> Vec<String> {
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
        if let Some(arr) = array.filter(|a| !a.tasks.is_empty()) {
            let limit = arr
                .limit
                .map(|l| format!("%{}", l.max(1)))
                .unwrap_or_default();
            a.push(format!("--array=0-{}{limit}", arr.tasks.len() - 1));
        }
        if !token.is_empty() {
            a.push(format!("--comment={token}"));
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The batch script: `exec` of the command.
    pub fn script(&self) -> String {
        format!("#!/bin/sh\nexec {}\n", words(&self.command))
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

/// The job (or array) an earlier attempt of this submission created, if the controller has it:
/// the job of this user and name whose comment is `token` (or, when `extra` replaced the
/// comment, the newest unfinished job of that name). `ArrayJobID` is the job's own id for a
/// plain job and the array's for every element of an array.
fn submitted_before(spec: &JobSpec, token: &str) -> Result<Option<u64>> {
    let args: Vec<String> = [
        "-h",
        "--me",
        "-t",
        "all",
        &format!("--name={}", spec.name),
        "-O",
        "ArrayJobID:|,State:|,Comment:",
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
    submit_with(spec, None)
}

/// Submits a job array; the array's id (its elements are `id_0` … `id_N`). Retried as
/// [`submit`].
pub fn submit_array(spec: &ArraySpec) -> Result<u64> {
    submit_with(&spec.job, Some(spec))
}

fn submit_with(spec: &JobSpec, array: Option<&ArraySpec>) -> Result<u64> {
    let commands: Vec<&[String]> = match array {
        Some(a) => a.tasks.iter().map(|t| t.command.as_slice()).collect(),
        None => vec![&spec.command],
    };
    if commands.is_empty() || commands.iter().any(|c| c.is_empty()) {
        return Err(SlurmError::Parse {
            cmd: "sbatch".into(),
            output: format!("job `{}` has no command", spec.name),
        });
    }
    let logs = std::iter::once(spec.log.as_path()).chain(
        array
            .into_iter()
            .flat_map(|a| a.tasks.iter().filter_map(|t| t.log.as_deref())),
    );
    for dir in logs.filter_map(|l| l.parent().filter(|d| !d.as_os_str().is_empty())) {
        std::fs::create_dir_all(dir).map_err(|source| SlurmError::Spawn {
            cmd: format!("mkdir {}", dir.display()),
            source,
        })?;
    }
    let token = token();
    let args = spec.args_with(array, &token);
    let script = match array {
        Some(a) => a.script(),
        None => spec.script(),
    };
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

/// Cancels jobs or array elements (`scancel 12 13_4`); unknown or finished ones are not an
/// error. Retried while the controller is busy or restarting.
pub fn cancel<I: Copy + Into<super::JobRef>>(ids: &[I]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let args: Vec<String> = ids.iter().map(|&i| i.into().to_string()).collect();
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
        assert!(!a.iter().any(|x| x.starts_with("--array")));
    }

    #[test]
    fn array_script_runs_each_element_with_its_own_log() {
        let s = ArraySpec {
            job: JobSpec {
                name: "pipe-arr".into(),
                log: "/dev/null".into(),
                ..Default::default()
            },
            tasks: vec![
                Task {
                    command: vec!["pipe".into(), "a b".into()],
                    log: Some("logs/a.log".into()),
                },
                Task {
                    command: vec!["pipe".into(), "c".into()],
                    log: None,
                },
            ],
            limit: Some(8),
        };
        assert!(
            s.args().iter().any(|x| x == "--array=0-1%8"),
            "{:?}",
            s.args()
        );
        let script = s.script();
        assert!(
            script.contains("  0) exec >logs/a.log 2>&1; exec pipe 'a b' ;;\n"),
            "{script}"
        );
        assert!(script.contains("  1) exec pipe c ;;\n"), "{script}");
        // an element index with no command fails instead of running nothing
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("s.sh");
        std::fs::write(&f, &script).unwrap();
        let o = std::process::Command::new("sh")
            .arg(&f)
            .env("SLURM_ARRAY_TASK_ID", "7")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("no element 7"));
    }
}
