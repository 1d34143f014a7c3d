//! The code map in `docs/architecture.md` names every source file of the
//! workspace, and nothing that is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_source_file_is_in_the_code_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let crates = root.join("crates");
    let mut files = vec![];
    for c in std::fs::read_dir(&crates).unwrap() {
        let src = c.unwrap().path().join("src");
        if src.is_dir() {
            sources(&src, &mut files);
        }
    }
    assert!(files.len() > 100, "found the sources ({})", files.len());
    let named = |f: &PathBuf| f.strip_prefix(&crates).unwrap().to_string_lossy().replace('\\', "/");
    let missing: Vec<String> = files.iter().map(named).filter(|f| !map.contains(&format!("`{f}`"))).collect();
    assert!(missing.is_empty(), "docs/architecture.md does not name: {missing:#?}");
    // And every file it names exists.
    let gone: Vec<&str> = map
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.starts_with("agentd") && w.contains("/src/") && w.ends_with(".rs"))
        .filter(|w| !crates.join(w).exists())
        .collect();
    assert!(gone.is_empty(), "docs/architecture.md names files that are gone: {gone:?}");
}
