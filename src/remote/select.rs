//! Which remote a command uses (`--remote`, else `PIPE_REMOTE`, else the pipeline file's
//! top-level `remote:` key).

use super::RemoteError;
use std::path::Path;

/// The remote URL for a pipeline: the command-line value, else `PIPE_REMOTE`, else the
/// pipeline's top-level `remote:`; a config error naming all three when none is set.
pub fn remote_url(cli: Option<&str>, root: &Path, pipeline: &Path) -> Result<String, RemoteError> {
    if let Some(u) = cli.filter(|u| !u.trim().is_empty()) {
        return Ok(u.trim().to_string());
    }
    if let Ok(u) = std::env::var("PIPE_REMOTE") {
        if !u.trim().is_empty() {
            return Ok(u.trim().to_string());
        }
    }
    let file = root.join(pipeline);
    let text = std::fs::read_to_string(&file).map_err(|e| RemoteError::io(&file, e))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| RemoteError::Config {
        url: String::new(),
        msg: format!("{}: not valid YAML: {e}", file.display()),
    })?;
    match yaml.get("remote") {
        Some(serde_yaml::Value::String(u)) if !u.trim().is_empty() => Ok(u.trim().to_string()),
        Some(serde_yaml::Value::Null) | None => Err(RemoteError::Config {
            url: String::new(),
            msg: format!(
                "no remote: pass --remote URL, set PIPE_REMOTE, or add `remote: s3://bucket/prefix` to {}",
                file.display()
            ),
        }),
        Some(_) => Err(RemoteError::Config {
            url: String::new(),
            msg: format!("{}: key `remote` must be a string (s3://bucket/prefix or a folder)", file.display()),
        }),
    }
}
