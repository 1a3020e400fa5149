//! The KPI part of the exposition: one series per KPI and fiscal year for each figure
//! that is present, named as docs/architecture.md "Metric names" fixes (the contract with the
//! generated dashboards and alert rules).

use std::collections::BTreeMap;

use mieruka_aggregator::{Figure, FiscalYear, KpiId, KpiKind, Plan};
use prometheus::{GaugeVec, Opts, Registry, TextEncoder};

use crate::wareki::era_fiscal_year;

/// Labels of every per-year KPI series.
const KPI_YEAR: &[&str] = &["kpi", "fiscal_year"];

/// The per-year gauges: metric name suffix, help text, and which part of a figure it
/// shows (`None`: absent, never zero).
type Field = fn(&Figure) -> Option<f64>;
const PER_YEAR: &[(&str, &str, Field)] = &[
    (
        "value",
        "The KPI's value in the fiscal year, in its unit (percent as 84.6): flows year to date, levels and ratios of levels as of the snapshot.",
        |f| f.value,
    ),
    (
        "target",
        "The plan's target for the fiscal year in force at the snapshot (the latest dated revision whose day has begun, else the original), in the KPI's unit; absent where the plan sets none.",
        |f| f.target,
    ),
    (
        "baseline",
        "The plan's reported figure for its baseline year, in the KPI's unit (shown beside the values; not an opening balance).",
        |f| f.baseline,
    ),
    (
        "pace",
        "Where the KPI should be now to reach the fiscal year's target on a straight line from the year's start; absent without a target.",
        |f| f.pace,
    ),
    (
        "projection",
        "Where the KPI will end the fiscal year at today's speed; absent in the year's first month (percentages capped at 100).",
        |f| f.projection,
    ),
    (
        "attainment_ratio",
        "How far the KPI has come from the year's start to its target: 1 means the target is met; absent without a target.",
        |f| f.attainment,
    ),
    (
        "drift",
        "Direction-aware distance of the value from pace, in the KPI's unit: negative is behind, and below minus the tolerance is behind pace.",
        |f| f.drift,
    ),
    (
        "on_track",
        "1 when the projection meets the fiscal year's target within the tolerance, 0 when it does not; absent without a target or a projection.",
        |f| f.on_track.map(|b| if b { 1.0 } else { 0.0 }),
    ),
    (
        "tolerance",
        "How far behind pace still counts as on pace, in the KPI's unit.",
        |f| Some(f.tolerance),
    ),
];

/// Renders the KPI part of the exposition for `figures` (as the engine returns them).
///
/// Pure: the same input gives the same text, series sorted by name and labels.
pub fn render_kpis(plan: &Plan, figures: &[Figure]) -> String {
    match try_render(plan, figures) {
        Ok(text) => text,
        Err(error) => {
            // Only a bug gets here (names and label sets are static, and every test
            // renders the whole Ome plan): serve the health part rather than nothing.
            tracing::error!(%error, "KPI metrics could not be rendered; serving none.");
            String::new()
        }
    }
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn try_render(plan: &Plan, figures: &[Figure]) -> prometheus::Result<String> {
    // A fresh registry per snapshot: a series that disappears (a target unset by a plan
    // change, a year no longer exported) disappears from the next scrape too.
    let registry = Registry::new();
    let gauges = Gauges::register(&registry)?;
    gauges.set_info(plan)?;
    gauges.set_figures(plan, figures)?;
    let mut text = String::with_capacity(64 * 1024);
    TextEncoder::new().encode_utf8(&registry.gather(), &mut text)?;
    Ok(text)
}

/// The KPI metric families of one snapshot's registry.
struct Gauges {
    per_year: Vec<(GaugeVec, Field)>,
    stage: GaugeVec,
    target_stage: GaugeVec,
    info: GaugeVec,
    as_of: GaugeVec,
    elapsed: GaugeVec,
    year_info: GaugeVec,
    final_: GaugeVec,
    adjustment: GaugeVec,
}

impl Gauges {
    /// Registers every family (the names and help texts are the contract).
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let per_year = PER_YEAR
            .iter()
            .map(|(suffix, help, field)| {
                let g = gauge_vec(registry, &format!("mieruka_kpi_{suffix}"), help, KPI_YEAR)?;
                Ok((g, *field))
            })
            .collect::<prometheus::Result<Vec<_>>>()?;
        let stage = gauge_vec(
        registry,
        "mieruka_kpi_milestone_stage",
        "Milestone KPIs: 0-based index of the highest stage reached by the fiscal year (the stages are the plan's).",
        KPI_YEAR,
    )?;
        let target_stage = gauge_vec(
        registry,
        "mieruka_kpi_milestone_target_stage",
        "Milestone KPIs: 0-based index of the stage the plan targets for the fiscal year; absent where the plan sets none.",
        KPI_YEAR,
    )?;
        let info = gauge_vec(
        registry,
        "mieruka_kpi_info",
        "The plan's description of each KPI (Japanese and English names, unit, which direction is better, chapter); always 1.",
        &["kpi", "name_ja", "name_en", "unit", "direction", "chapter"],
    )?;
        let as_of = gauge_vec(
        registry,
        "mieruka_kpi_as_of_timestamp_seconds",
        "Unix time of the latest event occurrence behind the KPI's value (monthly and annual feeds are as of a date).",
        &["kpi"],
    )?;
        let elapsed = gauge_vec(
        registry,
        "mieruka_kpi_elapsed_ratio",
        "Elapsed fraction of the fiscal year at the snapshot, from 0 (not started) to 1 (closed).",
        &["fiscal_year"],
    )?;
        let year_info = gauge_vec(
            registry,
            "mieruka_fiscal_year_info",
            "Each exported fiscal year's name in the Japanese era, as city documents write it (era_ja: FY2026 is Reiwa 8, written in kanji); always 1.",
            &["fiscal_year", "era_ja"],
        )?;
        let final_ = gauge_vec(
            registry,
            "mieruka_kpi_final",
            "1 when the fiscal year's figures are final (the year was closed by `mieruka close-year`, and every series of that year shows the figures frozen then), 0 while they are provisional.",
            KPI_YEAR,
        )?;
        let adjustment = gauge_vec(
            registry,
            "mieruka_kpi_adjustment",
            "Closed fiscal years: the change of the KPI's value since the close (live minus final), in its unit, from events and voids of that year that arrived after it; absent for open years or where either value is absent.",
            KPI_YEAR,
        )?;
        Ok(Self {
            final_,
            adjustment,
            per_year,
            stage,
            target_stage,
            info,
            as_of,
            elapsed,
            year_info,
        })
    }

    /// One `mieruka_kpi_info` series per KPI of the plan.
    fn set_info(&self, plan: &Plan) -> prometheus::Result<()> {
        let info = &self.info;
        for kpi in &plan.kpis {
            info.get_metric_with_label_values(&[
                kpi.id.as_str(),
                kpi.name_ja.as_str(),
                kpi.name_en.as_str(),
                kpi.unit.as_str(),
                kpi.direction.as_str(),
                kpi.chapter.as_str(),
            ])?
            .set(1.0);
        }
        Ok(())
    }

    /// The per-year series of each figure, the latest `as_of` per KPI and the elapsed
    /// fraction per year.
    fn set_figures(&self, plan: &Plan, figures: &[Figure]) -> prometheus::Result<()> {
        let Self {
            per_year,
            stage,
            target_stage,
            as_of,
            elapsed,
            year_info,
            final_,
            adjustment,
            ..
        } = self;
        let mut latest: BTreeMap<KpiId, f64> = BTreeMap::new();
        let mut years: BTreeMap<i32, f64> = BTreeMap::new();
        for fig in figures {
            // A figure of a KPI the plan does not have (a stale snapshot after a plan
            // change) has no id to label it with: it is skipped, not guessed.
            let Some(kpi) = plan.kpis.get(fig.kpi.0) else {
                continue;
            };
            let year = fig.year.0.to_string();
            let labels = [kpi.id.as_str(), year.as_str()];
            for (gauge, field) in per_year {
                if let Some(v) = field(fig).filter(|v| v.is_finite()) {
                    gauge.get_metric_with_label_values(&labels)?.set(v);
                }
            }
            let is_final = fig.finality.is_final();
            final_
                .get_metric_with_label_values(&labels)?
                .set(if is_final { 1.0 } else { 0.0 });
            if let Some(a) = fig.adjustment().filter(|a| a.is_finite()) {
                adjustment.get_metric_with_label_values(&labels)?.set(a);
            }
            if matches!(kpi.kind, KpiKind::Milestone { .. }) {
                if let Some(v) = fig.value.filter(|v| v.is_finite()) {
                    stage.get_metric_with_label_values(&labels)?.set(v);
                }
                if let Some(t) = fig.target.filter(|t| t.is_finite()) {
                    target_stage.get_metric_with_label_values(&labels)?.set(t);
                }
            }
            if let Some(t) = fig.as_of {
                let t = t.unix_seconds_f64();
                let e = latest.entry(fig.kpi).or_insert(t);
                *e = e.max(t);
            }
            if fig.elapsed.is_finite() {
                years.insert(fig.year.0, fig.elapsed);
            }
        }
        for (k, t) in latest {
            as_of
                .get_metric_with_label_values(&[plan.kpis[k].id.as_str()])?
                .set(t);
        }
        for (year, f) in years {
            let label = year.to_string();
            elapsed.get_metric_with_label_values(&[&label])?.set(f);
            if let Some(era) = era_fiscal_year(FiscalYear(year)) {
                year_info
                    .get_metric_with_label_values(&[&label, &era])?
                    .set(1.0);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mieruka_aggregator::Finality;
    use mieruka_ingest::Timestamp;

    /// The sample of `name` whose labels include `fiscal_year="<year>"`.
    fn sample(text: &str, name: &str, year: &str) -> Option<f64> {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains(&format!("fiscal_year=\"{year}\""))
            })
            .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
    }

    #[test]
    fn a_final_figure_is_marked_and_shows_its_change_since_the_close() {
        let plan = Plan::ome().unwrap();
        let k = plan.kpi_id("konbini_issuance_rate").unwrap();
        let open = crate::status::test_figure(k, Some(43.7), 1.0);
        let closed = Figure {
            year: FiscalYear(2025),
            value: Some(30.0),
            finality: Finality::Final {
                closed_at: Timestamp::from_unix_seconds(1_780_000_000),
                live: Some(65.0),
            },
            ..open.clone()
        };
        let text = try_render(&plan, &[closed, open]).unwrap();
        assert_eq!(sample(&text, "mieruka_kpi_final", "2025"), Some(1.0));
        assert_eq!(sample(&text, "mieruka_kpi_value", "2025"), Some(30.0));
        assert_eq!(sample(&text, "mieruka_kpi_adjustment", "2025"), Some(35.0));
        assert_eq!(sample(&text, "mieruka_kpi_final", "2026"), Some(0.0));
        assert_eq!(sample(&text, "mieruka_kpi_adjustment", "2026"), None);
    }

    #[test]
    fn every_per_year_gauge_has_a_valid_name_and_help() {
        let plan = Plan::ome().unwrap();
        // No figures: only the info series, but every family must register.
        let text = try_render(&plan, &[]).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("mieruka_kpi_info{"))
                .count(),
            plan.kpis.len()
        );
        assert!(!text.contains("mieruka_kpi_value"));
    }
}
