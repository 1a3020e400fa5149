//! `mieruka plan check [FILE]`: the one gate a plan file goes through. Everything the
//! roles, the rules and the dashboards need of a plan is checked when it loads; a valid
//! plan prints a summary of its KPIs by chapter, with their targets.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use mieruka_aggregator::{FiscalYear, Kpi, KpiKind, Plan};

use crate::config;

/// Checks the plan at `file` (the shipped Ome plan without one): its summary on
/// standard output, or why it is not valid on standard error and exit code 1.
pub fn check(file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let plan = match config::load_plan(file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    print!("{}", summary(&plan));
    Ok(ExitCode::SUCCESS)
}

/// The text `mieruka plan check` prints for a valid plan.
pub fn summary(plan: &Plan) -> String {
    let mut out = String::new();
    let years: Vec<_> = (plan.first_year.0..=plan.last_year.0).collect();
    let _ = writeln!(out, "{} — {} ({})", plan.name_ja, plan.name_en, plan.id);
    let _ = writeln!(
        out,
        "OK: {} event types, {} measures, {} KPIs; baseline FY{}, targets FY{}–FY{}",
        plan.schema.types().len(),
        plan.measures.len(),
        plan.kpis.len(),
        plan.baseline_year.0,
        plan.first_year.0,
        plan.last_year.0
    );
    for ch in &plan.chapters {
        let _ = writeln!(out, "\n第{}章 {} / {}", ch.id, ch.name_ja, ch.name_en);
        let head: Vec<String> = years.iter().map(|y| format!("FY{y}")).collect();
        let _ = writeln!(
            out,
            "  {:<40} {:>10} {:>12} {}",
            "KPI",
            "unit",
            "baseline",
            head.iter().map(|h| format!("{h:>12}")).collect::<String>()
        );
        for k in plan.kpis.iter().filter(|k| k.chapter == ch.id) {
            kpi_rows(&mut out, k, &years);
        }
    }
    out
}

/// One KPI's two lines: id, unit, baseline and each year's target; its names.
fn kpi_rows(out: &mut String, k: &Kpi, years: &[i32]) {
    let show = |v: Option<f64>| -> String {
        match (v, k.stages()) {
            (None, _) => "unset".into(),
            (Some(x), Some(stages)) => stages.get(x as usize).map_or("?".into(), |s| s.id.clone()),
            (Some(x), None) => format!("{x}"),
        }
    };
    let kind = match k.kind {
        KpiKind::Milestone { .. } => " (milestone)",
        KpiKind::Recurring(_) => " (recurring)",
        _ => "",
    };
    let targets: String = years
        .iter()
        .map(|y| format!("{:>12}", show(k.target(FiscalYear(*y)))))
        .collect();
    let _ = writeln!(
        out,
        "  {:<40} {:>10} {:>12} {targets}",
        format!("{}{kind}", k.id),
        k.unit,
        show(k.baseline)
    );
    let _ = writeln!(out, "    {} / {}", k.name_ja, k.name_en);
    for step in k.revision_steps() {
        let r = step.revision;
        let _ = writeln!(
            out,
            "    FY{} target revised {} → {} from {} ({})",
            r.year,
            show(step.previous),
            r.target,
            r.from,
            r.decision
        );
    }
}
