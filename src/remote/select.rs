//! Which remote a command uses (`--remote`, else `PIPE_REMOTE`, else the pipeline file's
//! top-level `remote:` key, read by `config::settings`).

use super::RemoteError;
use std::path::Path;

/// The remote URL for a pipeline: the command-line value, else `PIPE_REMOTE`, else the
/// pipeline's top-level `remote:` (`configured`, read with the pipeline file); a config error
/// naming all three when none is set.
pub fn remote_url(
    cli: Option<&str>,
    configured: Option<&str>,
    pipeline: &Path,
) -> Result<String, RemoteError> {
    if let Some(u) = cli.filter(|u| !u.trim().is_empty()) {
        return Ok(u.trim().to_string());
    }
    if let Ok(u) = std::env::var("PIPE_REMOTE") {
        if !u.trim().is_empty() {
            return Ok(u.trim().to_string());
        }
    }
    configured.map(str::to_string).ok_or_else(|| RemoteError::Config {
        url: String::new(),
        msg: format!(
            "no remote: pass --remote URL, set PIPE_REMOTE, or add `remote: s3://bucket/prefix` to {}",
            pipeline.display()
        ),
    })
}
