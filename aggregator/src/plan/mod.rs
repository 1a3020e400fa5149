//! The plan file (TOML): event types, measures and KPIs, and their compiled form.
//!
//! The format is documented in `docs/plan-format.md`. Loading reports every problem it
//! finds at once, each naming the line and the key, so a broken plan is fixed in one pass.
//!
//! `file` is the TOML as written, `model` the checked plan everyone else reads, and
//! `compile` (with `measures`, `kpis`, `targets` and `checks`) turns one into the other.

mod alert;
mod checks;
mod compile;
mod error;
mod file;
mod fingerprint;
mod kpis;
mod measures;
mod model;
mod revisions;
mod targets;

pub use alert::{Alert, CriticalFactor, PromDuration};
pub use error::{PlanError, PlanErrors};
pub use file::{AlertDecl, Chapter};
pub use fingerprint::{fingerprints, plan_fingerprint, Fingerprints, PlanDrift};
pub use model::{
    Direction, Kpi, KpiId, KpiKind, Measure, MeasureId, MeasureKind, Op, Plan, Revision,
    RevisionStep, Route, Stage,
};

use error::Errors;
use file::PlanFile;

/// The shipped default plan: Ome City's Smart Local Ome Action Plan 2026–2028.
pub const OME_PLAN: &str = include_str!("../../../plans/ome.toml");

/// How many fiscal years before its baseline year a plan takes events from: older
/// history than that is a mistake (a year 0001 or a swapped day and month), not data.
pub const HORIZON_YEARS: i32 = 5;

/// The file name under which the shipped plan is reported.
pub const OME_PLAN_NAME: &str = "plans/ome.toml";

impl Plan {
    /// The shipped Ome plan.
    pub fn ome() -> Result<Plan, PlanErrors> {
        Plan::parse(OME_PLAN_NAME, OME_PLAN)
    }

    /// Parses and checks a plan file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Plan, PlanErrors> {
        let fail = |list: Vec<PlanError>| PlanErrors {
            file: file.to_owned(),
            errors: list,
        };
        let raw: PlanFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| Errors::line_of(text, s.start));
            fail(vec![PlanError {
                line,
                key: "(syntax)".into(),
                message: e.message().to_owned(),
            }])
        })?;
        let mut errs = Errors {
            text,
            list: Vec::new(),
        };
        let plan = compile::compile(raw, &mut errs);
        if errs.list.is_empty() {
            if let Some(plan) = plan {
                return Ok(plan);
            }
        }
        errs.list.sort_by_key(|e| e.line.unwrap_or(0));
        Err(fail(errs.list))
    }
}
