//! [`ConfigError`]: a bad pipeline file, parameter file, override, project configuration or
//! lock file. Every configuration error is built by `parse::cfg(msg)`; the message names where
//! (`file:line:col`, the stage, the key or the flag) and how to fix it. Exit code 2.

/// A configuration error, with its message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
        }
    }
}
