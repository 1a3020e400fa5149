//! `mieruka plan check`: a summary for a good plan, every problem with its line otherwise.

use std::process::Command;

use crate::helpers::bin;

#[test]
fn the_shipped_plan_checks_and_prints_kpis_by_chapter_with_targets() {
    let out = Command::new(bin())
        .args(["plan", "check"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("第1章 行政サービスを変える"), "{text}");
    assert!(text.contains("第3章 地域社会を変える"), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("mynumber_card_holding_rate"))
        .unwrap();
    for figure in ["82", "84.6", "85.8", "86.8"] {
        assert!(line.contains(figure), "{line}");
    }
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("umepon_registrations"))
        .unwrap();
    assert!(line.contains("unset"), "{line}");
}

#[test]
fn a_broken_plan_fails_naming_each_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = mieruka_aggregator::plan::OME_PLAN;
    let broken = good
        .replacen(
            "numerator = \"certificates_konbini\"",
            "numerator = \"certificates_conbini\"",
            1,
        )
        .replacen("2028 = 86.8", "2031 = 86.8", 1);
    assert_ne!(broken, good, "the fixture edits must apply");
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, &broken).unwrap();
    let out = Command::new(bin())
        .args(["plan", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        err.contains(&format!("line {}", line_of("certificates_conbini"))),
        "{err}"
    );
    assert!(
        err.contains("\"certificates_conbini\" is not a declared measure"),
        "{err}"
    );
    assert!(
        err.contains(&format!("line {}", line_of("2031 = 86.8"))),
        "{err}"
    );
    assert!(err.contains("targets.2031"), "{err}");
}
