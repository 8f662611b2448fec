//! Pipeline files: serde types, figment layering, validation, matrix and epoch expansion (scaffold).
