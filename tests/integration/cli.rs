//! Command-line surface: usage errors exit 2, help exits 0, `clean` needs a target.

use crate::support::*;

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
    assert!(stderr(&o).contains("cannot read pipeline file missing.yaml"));
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
    let o = pipe_env(
        d.path(),
        &["run", "p.yaml", "--mirror", "m"],
        &[("PIPE_MIRROR", "/old")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::read_to_string(d.path().join("results/p/a/m.txt")).unwrap();
    let m = m.trim();
    assert!(m.ends_with("/m:/old"), "{m}");
}
