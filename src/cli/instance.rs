//! `pipe __instance` (hidden): runs one instance inside a Slurm job. With a shared folder the
//! job runs in the project (`--id`, `--fingerprint`, `--up ID=FP`); without one
//! (`--manifest KEY --remote URL`) it rebuilds the instance in its own scratch folder from the
//! remote store (`executor::scratch`). Either way the fingerprint is recomputed and the job
//! refuses to run (exit 2) when it differs from the one submitted (`executor::job`).

use super::PipelineArgs;
use crate::digest::Fingerprint;
use crate::error::{PipeError, Result};
use crate::executor::job::{run_instance, JobEnd};

#[derive(clap::Args)]
pub struct InstanceArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The instance id.
    #[arg(long, required_unless_present = "manifest")]
    pub id: Option<String>,
    /// The fingerprint the driver submitted.
    #[arg(long, required_unless_present = "manifest")]
    pub fingerprint: Option<Fingerprint>,
    /// The record of an upstream the fingerprint reads: `ID=FINGERPRINT` (repeatable).
    #[arg(long = "up", value_name = "ID=FP")]
    pub up: Vec<String>,
    /// Run even if a record of the fingerprint exists (`pipe run --force`).
    #[arg(long)]
    pub forced: bool,
    /// No shared folder: the key of the job manifest on the remote (`jobs/<blake3>.json`).
    #[arg(long, requires = "remote", conflicts_with_all = ["id", "fingerprint", "up"])]
    pub manifest: Option<String>,
    /// The remote store the manifest, the inputs and the outputs go through.
    #[arg(long)]
    pub remote: Option<String>,
    /// A mirror folder for downloads (repeatable; the driver's, absolute).
    #[arg(long, value_name = "DIR")]
    pub mirror: Vec<std::path::PathBuf>,
}

pub fn run(args: InstanceArgs) -> Result<i32> {
    crate::interrupt::install().map_err(|source| PipeError::Io {
        what: "cannot install the signal handlers".into(),
        source,
    })?;
    if let (Some(key), Some(url)) = (&args.manifest, &args.remote) {
        let mirrors = super::mirrors::from_cli(&args.mirror);
        return crate::executor::scratch::run(key, url, mirrors);
    }
    let (Some(id), Some(fp)) = (&args.id, &args.fingerprint) else {
        return Err(PipeError::usage(
            "__instance: give --id and --fingerprint, or --manifest and --remote",
        ));
    };
    let mut proj = args.pipeline.load()?;
    proj.mirrors = super::mirrors::from_cli(&args.mirror);
    let mut ups = std::collections::BTreeMap::new();
    for s in &args.up {
        let fp = s
            .rsplit_once('=')
            .and_then(|(id, fp)| Some((id, Fingerprint::parse(fp).ok()?)));
        let Some((id, fp)) = fp else {
            return Err(PipeError::usage(format!(
                "__instance: `--up {s}` is not ID=FINGERPRINT (64 hex digits)"
            )));
        };
        ups.insert(id.to_string(), fp);
    }
    match run_instance(&proj, id, fp, &ups, args.forced)? {
        JobEnd::Done(_) => Ok(0),
        JobEnd::Interrupted(code) => Ok(code),
    }
}
