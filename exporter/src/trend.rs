//! The fiscal year so far, month by month, and the small server-rendered SVG charts the
//! status page and the per-KPI pages draw from it: the value at each month's end
//! (year to date for flows, as of the month's last day for levels and ratios) against
//! the pace line and the target, with last year's months faint behind.
//!
//! The months are computed with the engine's own figures at each month's last instant,
//! so a point of the chart is exactly what `/metrics` said at that moment.

use std::fmt::Write as _;

use mieruka_aggregator::fiscal::JST_OFFSET_SECONDS;
use mieruka_aggregator::{figures, Figure, FiscalYear, Kpi, KpiId, Ledger, MeasureKind, Plan};
use mieruka_ingest::Timestamp;

use crate::status::kpi_measures;
use crate::status_page::current_year;

/// Months in a fiscal year, April first.
pub const MONTHS: usize = 12;

/// One KPI's months: index 0 is April, 11 is March.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// This year: each month that has ended, and the month in progress as of now.
    pub this_year: Vec<Option<f64>>,
    /// Last year, every month.
    pub last_year: Vec<Option<f64>>,
}

/// Every KPI's months of the fiscal year in progress at a snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trends {
    /// The year the months belong to.
    pub year: Option<FiscalYear>,
    /// Indexed by [`KpiId`].
    pub series: Vec<Series>,
}

impl Trends {
    /// The months of one KPI (empty when none were computed).
    pub fn of(&self, k: KpiId) -> Option<&Series> {
        self.series.get(k.0)
    }
}

/// The last instant of month `m` (0 = April) of `fy`, in JST.
pub fn month_end(fy: FiscalYear, m: usize) -> Timestamp {
    // The first instant of the next month (May 1 for April, … January 1 for December,
    // April 1 of the next year for March), less one microsecond.
    let next = if m >= MONTHS - 1 {
        fy.end()
    } else {
        let (y, month) = if m < 8 {
            (fy.0, m as u32 + 5)
        } else {
            (fy.0 + 1, m as u32 - 7)
        };
        Timestamp::from_civil(y, month, 1, (0, 0, 0), JST_OFFSET_SECONDS)
            .unwrap_or_else(|_| fy.end())
    };
    Timestamp::from_micros(next.micros() - 1)
}

/// The months of every KPI for the fiscal year in progress at `now`, from the ledger.
pub fn trends(plan: &Plan, ledger: &Ledger, now: Timestamp) -> Trends {
    let year = current_year(plan, now);
    let mut series = vec![Series::default(); plan.kpis.len()];
    for (fy, last) in [(year, false), (FiscalYear(year.0 - 1), true)] {
        for m in 0..MONTHS {
            let end = month_end(fy, m);
            let month_start = if m == 0 {
                fy.start()
            } else {
                month_end(fy, m - 1)
            };
            if month_start >= now {
                break;
            }
            let at = end.min(now);
            let figs = figures(plan, ledger, at);
            for fig in figs.iter().filter(|f| f.year == fy) {
                if let Some(s) = series.get_mut(fig.kpi.0) {
                    let v = if last {
                        &mut s.last_year
                    } else {
                        &mut s.this_year
                    };
                    v.push(fig.value.filter(|v| v.is_finite()));
                }
            }
        }
    }
    for (k, kpi) in plan.kpis_with_ids() {
        if counts_distinct(plan, kpi) {
            // The ledger keeps a year's distinct values, not when each was first seen, so
            // only the year so far (the last point) is exact: earlier months are dropped
            // rather than drawn with today's count.
            let s = &mut series[k.0];
            for v in [&mut s.this_year, &mut s.last_year] {
                let n = v.len();
                v.iter_mut()
                    .take(n.saturating_sub(1))
                    .for_each(|x| *x = None);
            }
        }
    }
    Trends {
        year: Some(year),
        series,
    }
}

/// Whether a KPI's value involves a `distinct` measure (telework: distinct staff).
fn counts_distinct(plan: &Plan, kpi: &Kpi) -> bool {
    kpi_measures(kpi).iter().any(|m| {
        plan.measures
            .get(m.0)
            .is_some_and(|m| m.kind == MeasureKind::Distinct)
    })
}

/// The size of a chart: the small one of the status page or the large one of a KPI's page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Size {
    /// A sparkline-sized chart in the table.
    Small,
    /// The per-KPI page's chart, with axes labelled.
    Large,
}

impl Size {
    /// (width, height, left margin, bottom margin) in SVG units.
    fn geometry(self) -> (f64, f64, f64, f64) {
        match self {
            Size::Small => (160.0, 48.0, 2.0, 2.0),
            Size::Large => (640.0, 300.0, 64.0, 28.0),
        }
    }
}

/// Maps months and values to SVG coordinates.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    bottom: f64,
    lo: f64,
    hi: f64,
}

impl Frame {
    fn x(&self, month: f64) -> f64 {
        self.left + (self.w - self.left - 4.0) * month / MONTHS as f64
    }
    fn y(&self, v: f64) -> f64 {
        let top = 6.0;
        let span = (self.hi - self.lo).max(f64::EPSILON);
        top + (self.h - self.bottom - top) * (1.0 - (v - self.lo) / span)
    }
    /// A polyline's points from (month, value) pairs.
    fn points(&self, pts: &[(f64, f64)]) -> String {
        let mut s = String::new();
        for (m, v) in pts {
            let _ = write!(s, "{:.1},{:.1} ", self.x(*m), self.y(*v));
        }
        s.trim_end().to_owned()
    }
}

/// (month end index + 1, value) for each month with a value, starting at (0, start).
fn line(values: &[Option<f64>], start: Option<f64>) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = start.into_iter().map(|b| (0.0, b)).collect();
    for (m, v) in values.iter().enumerate() {
        if let Some(v) = v {
            pts.push((m as f64 + 1.0, *v));
        }
    }
    pts
}

/// The chart of one KPI's year as inline SVG (no script, no external resource), or
/// `None` for a milestone (its stages are names, not a line) or without a month's value.
///
/// `fig` is the KPI's figure of the year (start, target).
pub fn chart(kpi: &Kpi, fig: Option<&Figure>, series: &Series, size: Size) -> Option<String> {
    if kpi.stages().is_some() {
        return None;
    }
    let label = format!("{} {}", kpi.name_ja, kpi.name_en);
    let start = fig.and_then(|f| f.start);
    let target = fig.and_then(|f| f.target);
    let this = line(&series.this_year, start);
    if this.len() < 2 {
        return None;
    }
    let last = line(&series.last_year, None);
    let pace = target.map(|t| vec![(0.0, start.unwrap_or(0.0)), (MONTHS as f64, t)]);
    let all = this
        .iter()
        .chain(&last)
        .chain(pace.iter().flatten())
        .map(|(_, v)| *v);
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(0.5);
    lo = if lo >= 0.0 && lo - pad < 0.0 {
        0.0
    } else {
        lo - pad
    };
    hi += pad;
    let (w, h, left, bottom) = size.geometry();
    let fr = Frame {
        w,
        h,
        left,
        bottom,
        lo,
        hi,
    };
    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        "<svg class=\"chart {}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">",
        if size == Size::Small {
            "small"
        } else {
            "large"
        },
        crate::status_page::esc(&label)
    );
    if size == Size::Large {
        write_axes(&mut s, &fr);
    }
    if last.len() >= 2 {
        let _ = write!(
            s,
            "<polyline class=\"last-year\" points=\"{}\" fill=\"none\" stroke=\"#afb8c1\" stroke-width=\"1.5\"/>",
            fr.points(&last)
        );
    }
    if let (Some(pace), Some(t)) = (&pace, target) {
        let _ = write!(
            s,
            "<line class=\"target\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#a40e26\" stroke-width=\"1\" stroke-dasharray=\"4 3\"/>\
             <polyline class=\"pace\" points=\"{}\" fill=\"none\" stroke=\"#57606a\" stroke-width=\"1\" stroke-dasharray=\"2 2\"/>",
            fr.x(0.0),
            fr.y(t),
            fr.x(MONTHS as f64),
            fr.y(t),
            fr.points(pace)
        );
    }
    let _ = write!(
        s,
        "<polyline class=\"value\" points=\"{}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\"/>",
        fr.points(&this)
    );
    s.push_str("</svg>");
    Some(s)
}

/// The large chart's axes: month initials below, the value range on the left.
fn write_axes(s: &mut String, fr: &Frame) {
    let base = fr.h - fr.bottom;
    let _ = write!(
        s,
        "<line x1=\"{:.1}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\" stroke=\"#d0d7de\"/>",
        fr.x(0.0),
        fr.x(MONTHS as f64)
    );
    for (m, name) in ["4月", "7月", "10月", "1月", "3月"]
        .iter()
        .zip([0.0, 3.0, 6.0, 9.0, 11.0])
        .map(|(n, m)| (m, n))
    {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#57606a\">{name}</text>",
            fr.x(m),
            fr.h - 8.0
        );
    }
    for v in [fr.lo, (fr.lo + fr.hi) / 2.0, fr.hi] {
        let _ = write!(
            s,
            "<text x=\"2\" y=\"{:.1}\" font-size=\"12\" fill=\"#57606a\">{}</text>",
            fr.y(v) + 4.0,
            crate::status_page::grouped(v, if fr.hi - fr.lo < 10.0 { 1 } else { 0 })
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_end_on_their_last_day_in_jst() {
        let fy = FiscalYear(2026);
        let april = month_end(fy, 0);
        assert_eq!(
            april.micros() + 1,
            Timestamp::parse_rfc3339("2026-05-01T00:00:00+09:00")
                .unwrap()
                .micros()
        );
        let december = month_end(fy, 8);
        assert_eq!(
            december.micros() + 1,
            Timestamp::parse_rfc3339("2027-01-01T00:00:00+09:00")
                .unwrap()
                .micros()
        );
        let february = month_end(fy, 10);
        assert_eq!(
            february.micros() + 1,
            Timestamp::parse_rfc3339("2027-03-01T00:00:00+09:00")
                .unwrap()
                .micros()
        );
        assert_eq!(month_end(fy, 11).micros() + 1, fy.end().micros());
    }

    #[test]
    fn a_chart_draws_the_year_pace_target_and_last_year() {
        let series = Series {
            this_year: vec![Some(10.0), Some(25.0), Some(30.0)],
            last_year: vec![Some(8.0); 12],
        };
        let fig = Figure {
            value: Some(30.0),
            elapsed: 0.25,
            ..crate::status::test_figure(KpiId(0), Some(120.0), 1.0)
        };
        let plan = Plan::ome().unwrap();
        let kpi = plan.kpi("umekko_new_registrations").unwrap();
        let svg = chart(kpi, Some(&fig), &series, Size::Large).unwrap();
        for class in ["value", "pace", "target", "last-year"] {
            assert!(
                svg.contains(&format!("class=\"{class}\"")),
                "{class}: {svg}"
            );
        }
        assert!(svg.contains("4月") && !svg.contains("<script"));
        // Four points of this year: the start and three month ends.
        let value = svg.split("class=\"value\" points=\"").nth(1).unwrap();
        assert_eq!(value.split('"').next().unwrap().split(' ').count(), 4);
        let empty = Series::default();
        assert_eq!(chart(kpi, Some(&fig), &empty, Size::Small), None);
        let stages = plan.kpi("invoice_online").unwrap();
        assert_eq!(chart(stages, Some(&fig), &series, Size::Small), None);
    }
}
