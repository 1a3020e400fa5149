//! How many decimals a KPI's figures are shown with: one answer for the alert texts
//! (`rules`) and the Grafana panels (`dashboards`), so an alert and the panel it
//! points to never show the same figure differently.

use mieruka_aggregator::Kpi;

/// Digits after the point for a KPI whose figures are not whole numbers: percentages
/// and fractional tolerances. Two, because the plan's percentage targets step by tenths
/// (84.6 → 85.8) and a drift within a tolerance of 0.5 must still read as non-zero.
pub const FRACTION_DECIMALS: usize = 2;

/// Digits shown for a KPI's figures: [`FRACTION_DECIMALS`] for percentages and KPIs
/// with a fractional tolerance, none for counts (which are whole numbers).
pub fn kpi_decimals(kpi: &Kpi) -> usize {
    if kpi.is_percent() || kpi.tolerance.fract() != 0.0 {
        FRACTION_DECIMALS
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mieruka_aggregator::Plan;

    #[test]
    fn percentages_show_two_decimals_and_counts_none() {
        let plan = Plan::ome().unwrap();
        let rate = plan.kpi("mynumber_card_holding_rate").unwrap();
        assert_eq!(kpi_decimals(rate), 2);
        let count = plan
            .kpis
            .iter()
            .find(|k| !k.is_percent() && k.tolerance.fract() == 0.0)
            .unwrap();
        assert_eq!(kpi_decimals(count), 0);
    }
}
