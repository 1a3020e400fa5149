//! The inputs with which the fuzz targets (`fuzz/`) found bugs, replayed through the same
//! checks under a plain `cargo test`, so that each bug stays fixed.
//!
//! Each file under `fuzz/regressions/<target>/` is one input: the bytes the target
//! read, or — for a structured input — its replay form (`*.json`, what `cargo fuzz fmt
//! <target> <crash>` prints).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

// Shared with the fuzz crate, which uses all of them.
#[allow(dead_code)]
#[path = "../../fuzz/src/checks.rs"]
mod checks;
#[allow(dead_code)]
#[path = "../../fuzz/src/plan.rs"]
mod plan;

use std::path::{Path, PathBuf};

/// The saved inputs of a target, by file name.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            eprintln!("{}", p.display());
            (p, bytes)
        })
        .collect()
}

fn is_replay(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

fn replay(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn text<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("replay without {key:?}"))
}

#[test]
fn frame_decode_regressions_hold() {
    let ome = plan::ome();
    for (_, data) in inputs("frame_decode") {
        let (mode, body) = data.split_first().unwrap();
        checks::check_frame(&ome.schema, body, mode & 1 == 1);
    }
}

#[test]
fn decode_embedded_regressions_hold() {
    let ome = plan::ome();
    for (path, data) in inputs("decode_embedded") {
        assert!(is_replay(&path), "decode_embedded keeps replay forms only");
        let case = replay(&data);
        let raw = text(&case, "raw").as_bytes();
        if case["near_miss"] == true {
            checks::check_near_miss_event(&ome.schema, raw);
        } else {
            let digits: Vec<u8> = text(&case, "digits").bytes().map(|b| b - b'0').collect();
            let digits: [u8; 12] = digits.try_into().unwrap();
            checks::check_embedded_event(&ome.schema, raw, &digits, text(&case, "field"));
        }
    }
}

#[test]
fn csv_import_regressions_hold() {
    let ome = plan::ome();
    let mappings = checks::csv_mappings(&plan::konbini_mapping());
    for (_, data) in inputs("csv_import") {
        checks::check_csv_input(&ome.schema, &mappings, &data);
    }
}

#[test]
fn guard_mask_regressions_hold() {
    for (path, data) in inputs("guard_mask") {
        if !is_replay(&path) {
            checks::check_guard_input(&data);
            continue;
        }
        let case = replay(&data);
        let (before, number, after) = (
            text(&case, "before"),
            text(&case, "number"),
            text(&case, "after"),
        );
        if case["near_miss"] == true {
            checks::check_near_miss_text(before, number, after);
        } else {
            checks::check_embedded_text(before, number, text(&case, "masked"), after);
        }
    }
}
