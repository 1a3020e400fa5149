//! How a KPI stands in a fiscal year, in one word: the one rule the status page (and
//! anything else that labels a KPI) uses, the same rule the generated alerts follow.
//!
//! First match wins: no data → no target → target met → projected to miss (`on_track`
//! 0; the alert `MierukaKpiProjectedMiss`) → behind pace (drift past the tolerance; the
//! alert `MierukaKpiBehindPace`) → on pace. In the year's first month there is no
//! projection, so only the last two apply. Recurring duties skip the projection, as
//! their alerts do (a once-a-year event projects to 0 until it happens). A milestone
//! is behind only once its target stage is overdue (past the plan's `due`, as the alert
//! `MierukaMilestoneOverdue`), never merely because the stage is not reached yet.

use mieruka_aggregator::plan::{Kpi, Plan};
use mieruka_aggregator::{Day, Figure, FiscalYear, KpiKind, MeasureId};
use mieruka_ingest::Timestamp;

/// How a KPI stands in a fiscal year.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    /// No value yet (no event, or a ratio whose denominator is unknown).
    NoData,
    /// The plan sets no target for the year.
    NoTarget,
    /// The target (or the target stage) is already reached.
    TargetMet,
    /// At today's speed the year ends short of its target (`on_track` 0).
    ProjectedMiss,
    /// Further behind the pace line than the tolerance.
    BehindPace,
    /// A milestone whose target stage is past its due date and not reached.
    Overdue,
    /// Neither behind nor projected to miss (a milestone: not due yet).
    OnPace,
}

impl Status {
    /// Every status, in the order of the rule.
    pub const ALL: [Status; 7] = [
        Status::NoData,
        Status::NoTarget,
        Status::TargetMet,
        Status::ProjectedMiss,
        Status::BehindPace,
        Status::Overdue,
        Status::OnPace,
    ];

    /// A stable ASCII id (`data-status` on the page, CSS class).
    pub fn id(self) -> &'static str {
        match self {
            Status::NoData => "no-data",
            Status::NoTarget => "no-target",
            Status::TargetMet => "target-met",
            Status::ProjectedMiss => "projected-miss",
            Status::BehindPace => "behind-pace",
            Status::Overdue => "overdue",
            Status::OnPace => "on-pace",
        }
    }

    /// The Japanese label.
    pub fn ja(self) -> &'static str {
        match self {
            Status::NoData => "データなし",
            Status::NoTarget => "目標未設定",
            Status::TargetMet => "達成",
            Status::ProjectedMiss => "未達見込み",
            Status::BehindPace => "遅れ",
            Status::Overdue => "期限超過",
            Status::OnPace => "順調",
        }
    }

    /// The English label.
    pub fn en(self) -> &'static str {
        match self {
            Status::NoData => "No data",
            Status::NoTarget => "No target",
            Status::TargetMet => "Target met",
            Status::ProjectedMiss => "Projected to miss",
            Status::BehindPace => "Behind pace",
            Status::Overdue => "Overdue",
            Status::OnPace => "On pace",
        }
    }

    /// Whether someone should look at it (the colour the page gives it).
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            Status::ProjectedMiss | Status::BehindPace | Status::Overdue
        )
    }
}

/// The instant from which a milestone's target stage for `fy` is overdue: the end of its
/// `due` day (JST), else the end of the fiscal year (April 1, 00:00 JST).
pub fn milestone_due(kpi: &Kpi, fy: FiscalYear) -> Timestamp {
    match kpi.due.get(&fy) {
        Some(day) => Day(day.0 + 1).start(),
        None => fy.end(),
    }
}

/// The measures a KPI's value is made of (none for a milestone).
pub(crate) fn kpi_measures(kpi: &Kpi) -> Vec<MeasureId> {
    kpi.measures()
}

/// Whether the KPI's value restarts at zero each fiscal year (a flow, or a ratio of
/// flows): a down-is-better flow meets its target only when the year is over.
fn is_flow(plan: &Plan, kpi: &Kpi) -> bool {
    let measures = kpi_measures(kpi);
    !measures.is_empty()
        && measures
            .iter()
            .all(|m| plan.measures.get(m.0).is_some_and(|m| m.kind.is_flow()))
}

/// How `kpi` stands with the figure `fig` of a year, at `now` (the snapshot's instant;
/// only milestones look at it). The one rule: see the module's documentation.
pub fn status(plan: &Plan, kpi: &Kpi, fig: Option<&Figure>, now: Timestamp) -> Status {
    let Some((fig, value)) = fig.and_then(|f| f.value.map(|v| (f, v))) else {
        return Status::NoData;
    };
    let Some(target) = fig.target else {
        return Status::NoTarget;
    };
    let dir = kpi.direction.sign();
    if matches!(kpi.kind, KpiKind::Milestone { .. }) {
        return if value >= target {
            Status::TargetMet
        } else if now >= milestone_due(kpi, fig.year) {
            Status::Overdue
        } else {
            Status::OnPace
        };
    }
    // Year to date, less of a down-is-better flow is not yet a result.
    let final_needed = dir < 0.0 && is_flow(plan, kpi) && fig.elapsed < 1.0;
    if dir * (value - target) >= 0.0 && !final_needed {
        return Status::TargetMet;
    }
    if fig.on_track == Some(false) && !matches!(kpi.kind, KpiKind::Recurring(_)) {
        return Status::ProjectedMiss;
    }
    if fig.drift.is_some_and(|d| d < -fig.tolerance) {
        return Status::BehindPace;
    }
    Status::OnPace
}

/// A FY2026 figure of `kpi` halfway through the year, valued 0 from a start of 0, with
/// nothing else: what unit tests change field by field.
#[cfg(test)]
pub(crate) fn test_figure(
    kpi: mieruka_aggregator::KpiId,
    target: Option<f64>,
    tolerance: f64,
) -> Figure {
    Figure {
        kpi,
        year: FiscalYear(2026),
        value: Some(0.0),
        target,
        baseline: None,
        start: Some(0.0),
        pace: None,
        projection: None,
        attainment: None,
        drift: None,
        on_track: None,
        tolerance,
        elapsed: 0.5,
        as_of: None,
        finality: mieruka_aggregator::Finality::Provisional,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mieruka_aggregator::KpiId;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn fig(plan: &Plan, kpi: &str) -> Figure {
        let k = plan.kpi_id(kpi).unwrap();
        let target = plan.kpis[k].target(FiscalYear(2026));
        test_figure(KpiId(k.0), target, plan.kpis[k].tolerance)
    }

    #[test]
    fn a_milestone_is_overdue_from_the_end_of_its_due_day_or_of_the_fiscal_year() {
        let plan = Plan::ome().unwrap();
        let mut kpi = plan.kpi("disposition_notice_online").unwrap().clone();
        // 2027-04-01T00:00+09:00
        assert_eq!(
            milestone_due(&kpi, FiscalYear(2026)).unix_seconds(),
            1_806_505_200
        );
        kpi.due
            .insert(FiscalYear(2026), "2026-09-30".parse().unwrap());
        // 2026-10-01T00:00+09:00
        assert_eq!(
            milestone_due(&kpi, FiscalYear(2026)).unix_seconds(),
            1_790_780_400
        );
    }

    const MID_YEAR: &str = "2026-10-01T00:00:00+09:00";

    #[test]
    fn a_projected_miss_wins_over_a_drift_within_the_tolerance() {
        let plan = Plan::ome().unwrap();
        let kpi = plan.kpi("konbini_issuance_rate").unwrap();
        // The case: 42.7 % projected against a 43.7 % target, drift small.
        let f = Figure {
            value: Some(42.7),
            projection: Some(42.7),
            drift: Some(-0.1),
            on_track: Some(false),
            ..fig(&plan, "konbini_issuance_rate")
        };
        assert_eq!(
            status(&plan, kpi, Some(&f), ts(MID_YEAR)),
            Status::ProjectedMiss
        );
        let on = Figure {
            on_track: Some(true),
            ..f.clone()
        };
        assert_eq!(status(&plan, kpi, Some(&on), ts(MID_YEAR)), Status::OnPace);
        let behind = Figure {
            drift: Some(-0.6),
            ..on
        };
        assert_eq!(
            status(&plan, kpi, Some(&behind), ts(MID_YEAR)),
            Status::BehindPace
        );
    }

    #[test]
    fn in_the_first_month_without_a_projection_only_pace_decides() {
        let plan = Plan::ome().unwrap();
        let kpi = plan.kpi("umekko_new_registrations").unwrap();
        let f = Figure {
            value: Some(10.0),
            drift: Some(-2.0),
            ..fig(&plan, "umekko_new_registrations")
        };
        let now = ts("2026-04-20T00:00:00+09:00");
        assert_eq!(status(&plan, kpi, Some(&f), now), Status::OnPace);
        let behind = Figure {
            drift: Some(-20.0),
            ..f
        };
        assert_eq!(status(&plan, kpi, Some(&behind), now), Status::BehindPace);
    }

    #[test]
    fn the_rule_checks_data_then_target_then_attainment_first() {
        let plan = Plan::ome().unwrap();
        let now = ts(MID_YEAR);
        let paper = plan.kpi("a4_paper_sheets_purchased").unwrap();
        let umekko = plan.kpi("umekko_new_registrations").unwrap();
        assert_eq!(status(&plan, umekko, None, now), Status::NoData);
        let nothing = Figure {
            value: None,
            ..fig(&plan, "umekko_new_registrations")
        };
        assert_eq!(status(&plan, umekko, Some(&nothing), now), Status::NoData);
        let f = fig(&plan, "a4_paper_sheets_purchased");
        assert_eq!(status(&plan, paper, Some(&f), now), Status::NoTarget);
        let met = Figure {
            value: Some(451.0),
            on_track: Some(false),
            drift: Some(-100.0),
            ..fig(&plan, "umekko_new_registrations")
        };
        assert_eq!(status(&plan, umekko, Some(&met), now), Status::TargetMet);
    }

    #[test]
    fn less_of_a_down_is_better_flow_is_met_only_when_the_year_is_over() {
        let plan = Plan::ome().unwrap();
        let paper = plan.kpi("a4_paper_sheets_purchased").unwrap();
        let f = Figure {
            value: Some(100.0),
            target: Some(1000.0),
            ..fig(&plan, "a4_paper_sheets_purchased")
        };
        assert_eq!(status(&plan, paper, Some(&f), ts(MID_YEAR)), Status::OnPace);
        let closed = Figure { elapsed: 1.0, ..f };
        assert_eq!(
            status(&plan, paper, Some(&closed), ts(MID_YEAR)),
            Status::TargetMet
        );
    }

    #[test]
    fn a_recurring_duty_is_never_projected_to_miss() {
        let plan = Plan::ome().unwrap();
        let kpi = plan.kpi("esports_events").unwrap();
        let f = Figure {
            on_track: Some(false),
            drift: Some(-0.4),
            ..fig(&plan, "esports_events")
        };
        assert_eq!(status(&plan, kpi, Some(&f), ts(MID_YEAR)), Status::OnPace);
    }

    #[test]
    fn a_milestone_is_behind_only_past_its_due_date() {
        let plan = Plan::ome().unwrap();
        let kpi = plan.kpi("el_qr_public_funds").unwrap();
        let f = fig(&plan, "el_qr_public_funds");
        assert_eq!(f.target, Some(1.0));
        assert_eq!(status(&plan, kpi, Some(&f), ts(MID_YEAR)), Status::OnPace);
        let after = ts("2027-04-01T00:00:00+09:00");
        assert_eq!(status(&plan, kpi, Some(&f), after), Status::Overdue);
        let reached = Figure {
            value: Some(1.0),
            ..f
        };
        assert_eq!(status(&plan, kpi, Some(&reached), after), Status::TargetMet);
    }
}
