//! `pipe init [DIR]`: scaffolds a project: `pipelines/hello.yaml` (three `command` stages that
//! run in well under a second) and a `.gitignore` for pipe's outputs. Existing files are never
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
# then edit the command of `longest` and `pipe run`: only that stage runs. Each stage writes
# into $PIPE_OUT, which becomes results/hello/<stage id>/; a metrics.json there is shown by pipe.
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
      cmd: "n=$(wc -w < results/hello/words/words.txt); echo \"{\\\"words\\\": $n}\" > $PIPE_OUT/metrics.json"
  longest:
    kind: command
    needs: [words]
    params:
      cmd: "tr ' ' '\\n' < results/hello/words/words.txt | awk '{ print length, $0 }' | sort -n -r | head -n 1 > $PIPE_OUT/longest.txt"
"#;

/// pipe's outputs; lock files (`pipelines/*.lock`) are meant to be committed.
pub const GITIGNORE: &str = "# pipe's outputs (the lock files pipelines/*.lock are committed)\n\
/cache\n/results\n/checkpoints\n";

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
