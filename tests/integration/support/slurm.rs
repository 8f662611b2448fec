//! The Slurm clusters `scripts/test.sh` starts, as tests see it: the shared one (`SLURM_CONF`
//! in the environment, `PIPE_TEST_SLURM=1`), with one lock for every test that submits jobs to
//! it, in any module; and the run's private one (`PIPE_TEST_SLURM2_BASE`, 16 CPUs on the node)
//! for the tests that stop its controller or fill its node, with a lock of its own. Also the
//! finished-jobs file both write (`jobcomp/filetxt`), squeue/sbatch wrappers put first on `PATH`,
//! and starting a further cluster with the project's scripts. Without the variables a test
//! prints a skip line and returns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The shared cluster's node is shared: tests that submit jobs run one at a time, across modules.
static NODE: Mutex<()> = Mutex::new(());
/// The private cluster: one test at a time (some stop its controller).
static PRIVATE: Mutex<()> = Mutex::new(());

/// The cluster, held for this test, or `None` (after a skip line) when `PIPE_TEST_SLURM` is not 1.
pub fn cluster() -> Option<MutexGuard<'static, ()>> {
    if std::env::var("PIPE_TEST_SLURM").ok().as_deref() != Some("1") {
        eprintln!("skipped: run scripts/test.sh (PIPE_TEST_SLURM unset)");
        return None;
    }
    Some(NODE.lock().unwrap_or_else(|p| p.into_inner()))
}

/// A cluster started by `scripts/slurm_up.sh` under `base`.
pub struct Cluster {
    pub base: PathBuf,
    /// Its `slurm.conf`: `SLURM_CONF` for the clients that should reach it.
    pub conf: PathBuf,
}

impl Cluster {
    pub fn at(base: &Path) -> Cluster {
        Cluster {
            base: base.to_path_buf(),
            conf: base.join("slurm.conf"),
        }
    }

    /// A Slurm client command (`squeue`, `sinfo`…) aimed at this cluster.
    pub fn cmd(&self, prog: &str) -> std::process::Command {
        let mut c = std::process::Command::new(prog);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Its finished jobs whose name starts with `prefix` (see [`jobcomp`]).
    pub fn jobcomp(&self, prefix: &str) -> Vec<BTreeMap<String, String>> {
        jobcomp(&self.base, prefix)
    }

    /// Polls [`Cluster::jobcomp`] until `n` jobs are there, for at most 20 s.
    pub fn jobcomp_n(&self, prefix: &str, n: usize) -> Vec<BTreeMap<String, String>> {
        let t0 = Instant::now();
        loop {
            let v = self.jobcomp(prefix);
            if v.len() >= n || t0.elapsed() > Duration::from_secs(20) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The ids and states (`squeue %i %T`) of this cluster's unfinished jobs named `prefix…`.
    pub fn queued(&self, prefix: &str) -> Vec<(String, String)> {
        let o = self
            .cmd("squeue")
            .args(["-h", "-o", "%i|%T|%j"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(3, '|').collect();
                (f.len() == 3 && f[2].starts_with(prefix))
                    .then(|| (f[0].to_string(), f[1].to_string()))
            })
            .collect()
    }

    /// `scripts/slurm_up.sh` or `slurm_down.sh` for this cluster, with `env` added; asserts success.
    pub fn script(&self, name: &str, env: &[(&str, &str)]) -> String {
        let s = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name);
        let o = std::process::Command::new(s)
            .env("SLURM_BASE", &self.base)
            .env_remove("SLURM_CONF")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let t = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success(),
            "{name} for {}: {t}",
            self.base.display()
        );
        t
    }
}

/// The run's private cluster, held for this test, or `None` (after a skip line) when
/// `PIPE_TEST_SLURM2_BASE` is not set.
pub fn private_cluster() -> Option<(MutexGuard<'static, ()>, Cluster)> {
    let Some(base) = std::env::var_os("PIPE_TEST_SLURM2_BASE") else {
        eprintln!("skipped: run scripts/test.sh (PIPE_TEST_SLURM2_BASE unset)");
        return None;
    };
    let g = PRIVATE.lock().unwrap_or_else(|p| p.into_inner());
    Some((g, Cluster::at(Path::new(&base))))
}

/// The finished jobs of the cluster under `base` (`jobcomp/filetxt`, `base/log/jobcomp.log`),
/// each as its `key=value` fields, only the jobs whose name starts with `prefix`.
pub fn jobcomp(base: &Path, prefix: &str) -> Vec<BTreeMap<String, String>> {
    let t = std::fs::read_to_string(base.join("log/jobcomp.log")).unwrap_or_default();
    t.lines()
        .map(|l| {
            l.split(' ')
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|m| m.get("Name").is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// The most jobs that held the node at once, from `StartTime`/`EndTime` (whole seconds, same
/// clock): intervals are half-open, so a job that ends in the second another starts does not
/// count as overlapping it (truncating both times keeps their order).
pub fn max_at_once(jobs: &[BTreeMap<String, String>]) -> usize {
    let mut ev: Vec<(String, i32)> = Vec::new();
    for j in jobs {
        ev.push((j["StartTime"].clone(), 1));
        ev.push((j["EndTime"].clone(), -1));
    }
    // ISO times sort as strings; at the same second, ends before starts
    ev.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in ev {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// The real path of a program found on `PATH`.
fn which(prog: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{prog} is not on PATH"))
}

/// A folder of wrappers for Slurm commands, to put first on `PATH`: each call of a wrapped
/// command appends `<unix time> <args>` to `<dir>/<prog>.calls`; the first `fail` calls print
/// `message` on stderr and exit 1 (after running the real command when `run_anyway`, as a
/// controller that took the request and lost the reply); the others run the real command.
pub struct Wrappers {
    pub dir: tempfile::TempDir,
}

impl Wrappers {
    pub fn new() -> Wrappers {
        Wrappers {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Wraps `prog`.
    pub fn wrap(&self, prog: &str, fail: u32, message: &str, run_anyway: bool) -> &Self {
        let real = which(prog);
        let calls = self.dir.path().join(format!("{prog}.calls"));
        let anyway = if run_anyway {
            format!("{} \"$@\" >/dev/null 2>&1", real.display())
        } else {
            String::new()
        };
        let script = format!(
            "#!/bin/sh\n\
             echo \"$(date +%s.%N) $*\" >> '{calls}'\n\
             n=$(wc -l < '{calls}')\n\
             if [ \"$n\" -le {fail} ]; then\n  {anyway}\n  echo '{message}' >&2\n  exit 1\nfi\n\
             exec {real} \"$@\"\n",
            calls = calls.display(),
            real = real.display(),
        );
        let p = self.dir.path().join(prog);
        std::fs::write(&p, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// `PATH` with the wrappers first.
    pub fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The calls of a wrapped command: (unix time, arguments).
    pub fn calls(&self, prog: &str) -> Vec<(f64, String)> {
        std::fs::read_to_string(self.dir.path().join(format!("{prog}.calls")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (t, a) = l.split_once(' ').unwrap_or((l, ""));
                Some((t.parse().ok()?, a.to_string()))
            })
            .collect()
    }
}
