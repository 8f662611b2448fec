//! The test layout itself: with `autotests = false` cargo builds no file under `tests/` that is
//! not declared, so a suite added as `tests/<name>.rs`, or a module file missing its `mod` line,
//! would silently never run. This area fails instead.

use std::path::Path;

#[test]
fn every_test_file_is_a_module_of_the_integration_binary() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(tests.join("integration/main.rs")).unwrap();
    let mut stray = Vec::new();
    for e in std::fs::read_dir(&tests).unwrap().flatten() {
        let p = e.path();
        let other_binary = p.join("main.rs").is_file() && e.file_name() != "integration";
        if p.extension().is_some_and(|x| x == "rs") || other_binary {
            stray.push(p.display().to_string());
        }
    }
    for e in std::fs::read_dir(tests.join("integration"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        if module != "main" && !main.lines().any(|l| l.trim() == format!("mod {module};")) {
            stray.push(e.path().display().to_string());
        }
    }
    assert!(
        stray.is_empty(),
        "not built by `cargo test`: {stray:?}; move each to tests/integration/<area>.rs and add \
         `mod <area>;` to tests/integration/main.rs"
    );
}
