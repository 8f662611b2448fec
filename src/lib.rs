//! pipe: declarative ML pipelines in YAML with content-hash caching, plus built-in stages that
//! train and evaluate a small decoder-only transformer language model.
//!
//! Layers, from the bottom: plain domain libraries (`model`, `decode`, `text`, `metrics`, `plot`)
//! that know nothing of pipelines; the engine (`cache`, `graph`, `config`, `project`, `plan`,
//! `instance`, `executor`, `engine`, each importing only those before it); the stage kinds
//! (`stage`), thin glue between the two; and the command line (`cli`).

pub mod alloc;
pub mod bytes;
pub mod cache;
pub mod cli;
pub mod compare;
pub mod config;
pub mod decode;
pub mod digest;
pub mod download;
pub mod embedding;
pub mod engine;
pub mod error;
pub mod executor;
pub mod experiment;
pub mod graph;
pub mod input_file;
pub mod instance;
pub mod interrupt;
pub mod layout;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod project;
pub mod remote;
pub mod report;
pub mod seed;
pub mod simd;
pub mod slurm;
pub mod stage;
pub mod text;
