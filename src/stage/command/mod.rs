//! The `command` stage kind: runs any shell command as a stage, with declared `deps` (hashed
//! inputs) and `outs` (files or folders it must create), like DVC's `cmd`. Any other key of its
//! `params` is a user parameter (in `${…}` and `PIPE_PARAMS`); `metrics:` and `plots:` files
//! become its headline metrics and curves ([`declared`]). Upstream folders reach the command as
//! `PIPE_IN_<STAGE>` and `PIPE_INPUTS` ([`inputs`]). The command runs in its own process group,
//! which dies with pipe and is stopped on Ctrl-C/SIGTERM (`interrupt`).

pub mod declared;
mod inputs;

use super::{KindInfo, StageCtx, StageKind};
use crate::interrupt::{self, Interrupted};
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

pub struct Command;

/// Typed parameters. Every other key is a user parameter (the engine rejects near misses of
/// these keys and overrides of undeclared ones).
#[derive(Deserialize)]
struct Params {
    cmd: String,
    deps: Vec<String>,
    outs: Vec<String>,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    plots: Vec<declared::PlotDecl>,
}

fn paths(params: &serde_json::Value, key: &str) -> Vec<PathBuf> {
    params
        .get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

impl StageKind for Command {
    fn info(&self) -> KindInfo {
        KindInfo {
            name: "command",
            version: 2,
            defaults_yaml: include_str!("../../../stages/command.yaml"),
            heavy: false,
            per_epoch: false,
            free_matrix_keys: true,
            needs: &[],
            uses_pipeline_name: false,
            reads_measurements: false,
        }
    }

    fn check(&self, params: &serde_json::Value) -> Result<(), String> {
        let p: Params = super::check_as(params)?;
        // Where `deps` may lie is the loader's rule (inside the project or an `allow_outside`
        // folder, `..` or absolute alike).
        for (key, list) in [("deps", &p.deps), ("outs", &p.outs)] {
            for x in list {
                if x.is_empty() || (key == "outs" && x.split('/').any(|c| c == "..")) {
                    return Err(format!(
                        "`{key}` entry `{x}` must be a non-empty path inside the project"
                    ));
                }
            }
        }
        for o in &p.outs {
            if std::path::Path::new(o).is_absolute() {
                return Err(format!(
                    "`outs` entry `{o}` must be relative to the project root"
                ));
            }
        }
        declared::check(&p.metrics, &p.plots, &p.outs)
    }

    fn external_inputs(&self, params: &serde_json::Value) -> Vec<PathBuf> {
        paths(params, "deps")
    }

    fn declared_outputs(&self, params: &serde_json::Value) -> Vec<PathBuf> {
        paths(params, "outs")
    }

    fn run(&self, ctx: &StageCtx) -> anyhow::Result<()> {
        let p: Params = ctx.params()?;
        if p.cmd.trim().is_empty() {
            anyhow::bail!(
                "stage `{}`: parameter `cmd` is empty; give the shell command to run",
                ctx.id
            );
        }
        for o in &p.outs {
            if let Some(parent) = ctx.path(o).parent() {
                std::fs::create_dir_all(parent)?;
            }
        }
        if let Some(signal) = interrupt::requested() {
            return Err(Interrupted {
                stage: ctx.id.clone(),
                signal,
            }
            .into());
        }
        ctx.reporter.log(format!("$ {}", p.cmd));
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&p.cmd)
            .current_dir(&ctx.root)
            .env("PIPE_STAGE", &ctx.id)
            .env("PIPE_SEED", ctx.seed_for("command").to_string())
            .env("PIPE_PARAMS", serde_json::to_string(&ctx.params)?)
            .env("PIPE_OUT", &ctx.out_dir)
            .env("PIPE_CKPT", &ctx.ckpt_dir)
            .env("PIPE_MEASURE", &ctx.meas_dir)
            .envs(inputs::variables(ctx)?);
        // The command sees the mirror folders of this run (`--mirror` included) as PIPE_MIRROR.
        if !ctx.mirrors.is_empty() {
            let joined = std::env::join_paths(&ctx.mirrors)
                .map_err(|e| anyhow::anyhow!("mirror folders cannot be passed on: {e}"))?;
            cmd.env(crate::download::MIRROR_ENV, joined);
        }
        // Its own process group, stopped on Ctrl-C/SIGTERM and killed if pipe dies; dropping
        // `group` (an early return, a panic) kills and reaps it, so nothing outlives this call.
        let io = interrupt::GroupIo {
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
            cleanup: None,
        };
        let mut group = interrupt::spawn_group(&cmd, io)
            .map_err(|e| anyhow::anyhow!("cannot start `sh -c {}`: {e}", p.cmd))?;
        let out = group.child_mut().stdout.take();
        let err = group.child_mut().stderr.take();
        let r1 = ctx.reporter.clone();
        let r2 = ctx.reporter.clone();
        let t1 = std::thread::spawn(move || {
            if let Some(o) = out {
                for l in BufReader::new(o).lines().map_while(Result::ok) {
                    r1.log(l);
                }
            }
        });
        let t2 = std::thread::spawn(move || {
            if let Some(o) = err {
                for l in BufReader::new(o).lines().map_while(Result::ok) {
                    r2.log(l);
                }
            }
        });
        // Waits for the command; its supervisor kills what it left running (so the log readers
        // see end-of-file), then it is reaped.
        let status = group.wait()?;
        let _ = t1.join();
        let _ = t2.join();
        if !status.success() {
            if let Some(signal) = interrupt::requested() {
                return Err(Interrupted {
                    stage: ctx.id.clone(),
                    signal,
                }
                .into());
            }
            anyhow::bail!("command `{}` exited with {status}", p.cmd);
        }
        declared::collect(&ctx.root, &ctx.out_dir, &p.metrics, &p.plots)
    }
}
