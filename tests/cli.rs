//! Command-line surface: usage errors exit 2, help exits 0, `clean` needs a target.

use std::process::Command;

const PIPE: &str = env!("CARGO_BIN_EXE_pipe");

fn pipe(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(PIPE)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(pipe(d.path(), &["run"]).status.code(), Some(2));
    assert_eq!(
        pipe(d.path(), &["run", "x.yaml", "--bogus"]).status.code(),
        Some(2)
    );
    assert_eq!(pipe(d.path(), &["clean"]).status.code(), Some(2));
    assert_eq!(pipe(d.path(), &["clean", "--cache"]).status.code(), Some(2));
    let o = pipe(d.path(), &["status", "missing.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read pipeline file missing.yaml"));
    assert_eq!(pipe(d.path(), &["--help"]).status.code(), Some(0));
    assert_eq!(pipe(d.path(), &["run", "--help"]).status.code(), Some(0));
}

#[test]
fn mirror_flag_prepends_to_pipe_mirror() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("m")).unwrap();
    std::fs::write(
        d.path().join("p.yaml"),
        "stages:\n  a: { kind: command, params: { cmd: \"echo $PIPE_MIRROR > $PIPE_OUT/m.txt\" } }\n",
    )
    .unwrap();
    let o = Command::new(PIPE)
        .args(["run", "p.yaml", "--mirror", "m"])
        .env("PIPE_MIRROR", "/old")
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = std::fs::read_to_string(d.path().join("results/p/a/m.txt")).unwrap();
    let m = m.trim();
    assert!(m.ends_with("/m:/old"), "{m}");
}
