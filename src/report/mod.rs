//! The HTML report page of a study: results beside the seed's figures (training, inference,
//! attention maps, KV cache, beam search, samples) and what was run (date, version, commit,
//! every stage instance with its parameters, fingerprint and run time). Takes plain inputs
//! (folders and facts), knows nothing of the engine; the `report` stage kind only locates them.

mod commands;
pub mod format;
pub mod read;
mod results;
mod run;
pub mod seed;
mod texts;

use crate::plot::html::{data_uri, image_mime, slug, Page};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// How figures get into the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ImageMode {
    /// Base64 data URIs: index.html is the only file.
    Embed,
    /// Copies under `figures/`, linked relatively.
    Copy,
}

impl TryFrom<String> for ImageMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "embed" => Ok(ImageMode::Embed),
            "copy" => Ok(ImageMode::Copy),
            _ => Err(format!("`images` must be `embed` or `copy`, got `{s}`")),
        }
    }
}

/// One stage instance the report covers.
#[derive(Debug, Clone)]
pub struct Source {
    /// Instance id, e.g. `beam-eval@beam_width=3`.
    pub id: String,
    /// Base stage name.
    pub stage: String,
    pub kind: String,
    /// Its results folder (outputs and measurements).
    pub dir: PathBuf,
    /// Its merged parameters.
    pub params: serde_json::Value,
    pub fingerprint: String,
    /// Seconds its last real run took.
    pub duration_s: Option<f64>,
}

/// Facts about this run of the report.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// When the page was made, e.g. `2026-12-01 22:30 UTC`.
    pub date: String,
    /// pipe's version.
    pub version: String,
    /// The project's git commit, when it is a repository.
    pub commit: Option<String>,
    /// The work tree differs from the commit.
    pub dirty: bool,
}

/// Everything the page is made from.
pub struct Inputs {
    pub title: String,
    pub subtitle: String,
    pub images: ImageMode,
    /// Where `index.html` goes (figures are copied under it in `Copy` mode).
    pub out_dir: PathBuf,
    /// The stages the report reads from (its `needs`, swept stages expanded).
    pub direct: Vec<Source>,
    /// Every instance the report depends on, in run order, the report itself last.
    pub all: Vec<Source>,
    pub run: RunInfo,
    /// Charts overlaying compared experiments: (caption, image file).
    pub compare: Vec<(String, PathBuf)>,
}

/// Kinds of the language-model study: their sections are shown when one is present.
const STUDY_KINDS: [&str; 6] = [
    "train",
    "plot",
    "infer",
    "kv-eval",
    "beam-eval",
    "beam-report",
];

/// Why the page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Builds the page's HTML (and, in `Copy` mode, its figure files).
pub fn build(inp: &Inputs) -> Result<String, ReportError> {
    let mut b = Builder {
        inp,
        page: Page::new(&inp.title, &inp.subtitle),
    };
    if inp
        .direct
        .iter()
        .any(|s| STUDY_KINDS.contains(&s.kind.as_str()))
    {
        b.summary();
        b.training()?;
        b.inference();
        b.attention()?;
        b.kv_cache()?;
        b.beam()?;
        b.samples();
    }
    b.commands()?;
    b.compare()?;
    b.run_info();
    b.stages();
    b.parameters();
    Ok(b.page.render())
}

pub(crate) struct Builder<'a> {
    inp: &'a Inputs,
    page: Page,
}

impl<'a> Builder<'a> {
    /// The direct sources of one kind.
    fn of(&self, kind: &str) -> Vec<&'a Source> {
        let inp: &'a Inputs = self.inp;
        inp.direct.iter().filter(|u| u.kind == kind).collect()
    }

    /// `file` of `up` as an image source (a data URI or a copied file), or a note if absent.
    fn image_src(&mut self, up: &Source, file: &Path) -> Result<Option<String>, ReportError> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let Some(mime) = image_mime(&name) else {
            return Ok(None);
        };
        let Ok(bytes) = std::fs::read(file) else {
            self.page.missing(&format!(
                "`{}` wrote no {name}, so the figure is missing.",
                up.id
            ));
            return Ok(None);
        };
        Ok(Some(match self.inp.images {
            ImageMode::Embed => data_uri(mime, &bytes),
            ImageMode::Copy => {
                let rel = PathBuf::from("figures").join(slug(&up.id)).join(&name);
                let dest = self.inp.out_dir.join(&rel);
                std::fs::create_dir_all(dest.parent().expect("has a parent"))
                    .and_then(|_| std::fs::write(&dest, &bytes))
                    .map_err(|source| ReportError::Write {
                        path: dest.clone(),
                        source,
                    })?;
                rel.to_string_lossy().replace('\\', "/")
            }
        }))
    }

    /// Adds `file` of `up` as a figure scaled to the page, or a note if it is absent.
    fn image(&mut self, up: &Source, file: &Path, caption: &str) -> Result<(), ReportError> {
        if let Some(src) = self.image_src(up, file)? {
            self.page.figure(&src, caption);
        }
        Ok(())
    }
}
