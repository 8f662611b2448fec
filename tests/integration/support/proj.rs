//! The project builder: a temporary project folder driven through the real `pipe` binary.
//! `command` stages that append their id to `runs.log` let a test tell which stages really ran
//! (restores and up-to-date stages do not write there).

use super::run::{pipe_cmd, stderr, stdout};
use super::tree::{self, Node};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A project in a fresh temporary folder: `pipelines/p.yaml` and `in.txt` (`hello`), or, for
/// [`Proj::nested`], a project folder beside an `outside/` sibling standing in for the rest of
/// the machine.
pub struct Proj {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Proj {
    /// `pipelines/p.yaml` holding `pipeline`, and `in.txt`.
    pub fn new(pipeline: &str) -> Proj {
        let p = Proj::empty();
        p.write("pipelines/p.yaml", pipeline);
        p.write("in.txt", "hello\n");
        p
    }

    /// An empty project folder (its path canonical, so it matches what pipe prints and hashes).
    pub fn empty() -> Proj {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        Proj { dir, root }
    }

    /// An empty project folder `<tmp>/<name>`; [`Proj::tmp`] is the temporary folder around it.
    pub fn nested(name: &str) -> Proj {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join(name);
        std::fs::create_dir_all(&root).unwrap();
        Proj { dir, root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temporary folder holding the project (the project itself unless [`Proj::nested`]).
    pub fn tmp(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `text` to `rel` under the project, creating folders.
    pub fn write(&self, rel: &str, text: &str) {
        tree::write(&self.path(rel), text);
    }

    /// The text of `rel` under the project, empty when missing.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// `pipe ARGS` in the project (see [`pipe_cmd`]), with no git repository above the temporary
    /// folder visible.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = pipe_cmd(&self.root, args);
        c.env("GIT_CEILING_DIRECTORIES", self.tmp().parent().unwrap());
        c
    }

    pub fn pipe(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs `pipe ARGS`, asserts the exit code, returns stdout.
    pub fn expect(&self, args: &[&str], code: i32) -> String {
        let o = self.pipe(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "pipe {args:?}\nstdout:\n{}\nstderr:\n{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Runs `pipe ARGS`, asserts the exit code, returns stderr.
    pub fn expect_err(&self, args: &[&str], code: i32) -> String {
        let o = self.pipe(args);
        assert_eq!(o.status.code(), Some(code), "pipe {args:?}: {}", stderr(&o));
        stderr(&o)
    }

    /// Runs `pipe ARGS`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0)
    }

    /// Runs `pipe run pipelines/p.yaml EXTRA`, asserts success; returns the ids that really ran
    /// (from runs.log), sorted, and clears the log.
    pub fn run_ok(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["run", "pipelines/p.yaml"];
        args.extend_from_slice(extra);
        self.ok(&args);
        self.take_runs()
    }

    /// The ids in runs.log, sorted, then clears it.
    pub fn take_runs(&self) -> Vec<String> {
        let v = self.runs();
        let _ = std::fs::remove_file(self.path("runs.log"));
        v
    }

    /// The ids in runs.log, sorted.
    pub fn runs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.read("runs.log").lines().map(String::from).collect();
        v.sort();
        v
    }

    /// Every path under the temporary folder with its content (see [`tree::snapshot`]).
    pub fn snapshot(&self) -> Vec<(PathBuf, Node)> {
        tree::snapshot(self.tmp())
    }

    /// The store's path of the object holding `bytes`.
    pub fn object_of(&self, bytes: &[u8]) -> PathBuf {
        let h = blake3::hash(bytes).to_hex().to_string();
        self.path(&format!("cache/objects/{}/{}", &h[..2], &h[2..]))
    }

    /// `git ARGS` in the project with a clean configuration and a fixed author; asserts success.
    pub fn git(&self, args: &[&str]) {
        let o = Command::new("git")
            .args(args)
            .current_dir(self.root())
            .env("GIT_CEILING_DIRECTORIES", self.tmp().parent().unwrap())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    }
}

/// Five `command` instances: a → b (matrix w: 1, 2) → c, plus d independent of a; a, b declare
/// outputs in the project (`out/`), c, d write to `$PIPE_OUT`.
pub const CHAIN: &str = r#"
name: demo
seed: 7
stages:
  a:
    kind: command
    params:
      cmd: "echo a >> runs.log; mkdir -p out; cat in.txt > out/a.txt; echo '{\"score\": 1.5}' > $PIPE_OUT/metrics.json"
      deps: [in.txt]
      outs: [out/a.txt]
  b:
    kind: command
    needs: [a]
    matrix: { w: [1, 2] }
    params:
      cmd: "echo $PIPE_STAGE >> runs.log; cat out/a.txt > out/b_${w}.txt; echo ${w} >> out/b_${w}.txt"
      deps: [out/a.txt]
      outs: ["out/b_${w}.txt"]
  c:
    kind: command
    needs: [b]
    params:
      cmd: "echo c >> runs.log; cat out/b_1.txt out/b_2.txt > $PIPE_OUT/c.txt"
  d:
    kind: command
    params:
      cmd: "echo d >> runs.log; echo d > $PIPE_OUT/d.txt"
"#;
