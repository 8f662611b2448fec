//! `pipe init [DIR]`: scaffolds a project: `pipelines/hello.yaml` (three `command` stages that
//! run in well under a second, reading upstream folders from `PIPE_IN_<STAGE>`, one with a
//! parameter of its own) and a `.gitignore` for pipe's outputs. Existing files are never
//! overwritten.

use crate::error::{PipeError, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The project folder (created when missing; default: the current folder).
    pub dir: Option<PathBuf>,
}

/// The example pipeline.
pub const HELLO_YAML: &str = r#"# A small pipeline of `command` stages. Try `pipe run`, then `pipe run` again (nothing runs),
# then `pipe run --set longest.top=3`: only `longest` runs. Each stage writes into $PIPE_OUT,
# which becomes results/hello/<stage id>/ (a metrics.json there is shown by `pipe metrics show`);
# a stage reads the folder of a stage it needs from $PIPE_IN_<STAGE>.
name: hello
seed: 7
stages:
  words:
    kind: command
    params:
      cmd: "printf 'the cat sat on the mat\\nthe dog ran home\\n' > $PIPE_OUT/words.txt"
  count:
    kind: command
    needs: [words]
    params:
      cmd: "n=$(wc -w < $PIPE_IN_WORDS/words.txt); echo \"{\\\"words\\\": $n}\" > $PIPE_OUT/metrics.json"
  longest:
    kind: command
    needs: [words]
    params:
      top: 1   # a parameter of your own: in ${top}, PIPE_PARAMS, `pipe params diff`, `pipe exp show`
      cmd: "tr ' ' '\\n' < $PIPE_IN_WORDS/words.txt | awk '{ print length, $0 }' | sort -n -r | head -n ${top} > $PIPE_OUT/longest.txt"
"#;

/// pipe's outputs; lock files (`pipelines/*.lock`) are meant to be committed.
pub const GITIGNORE: &str = "# pipe's outputs (the lock files pipelines/*.lock are committed)\n\
/cache\n/results\n/checkpoints\n/pipe_plots\n";

pub fn run(a: InitArgs) -> Result<i32> {
    let dir = a.dir.unwrap_or_else(|| PathBuf::from("."));
    let files = [
        (PathBuf::from("pipelines/hello.yaml"), HELLO_YAML),
        (PathBuf::from(".gitignore"), GITIGNORE),
    ];
    let existing: Vec<String> = files
        .iter()
        .map(|(p, _)| dir.join(p))
        .filter(|p| p.exists() || p.is_symlink())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(PipeError::usage(format!(
            "pipe init: {} already exist{}; nothing was written (remove or rename {} first)",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" },
            if existing.len() == 1 { "it" } else { "them" },
        )));
    }
    for (rel, text) in &files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| PipeError::io("cannot create the folder", parent, e))?;
        }
        // `create_new`: never replace a file that appeared since the check.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| PipeError::io("cannot write", &p, e))?;
        println!("created {}", p.display());
    }
    let shown = dir.display().to_string();
    if shown == "." {
        println!("next: pipe run");
    } else {
        println!("next: cd {shown} && pipe run");
    }
    Ok(0)
}
