//! The fiscal-year close: a year that has ended is provisional (速報値) until
//! `mieruka close-year` freezes its figures as final (確定値), with the instant, the
//! operator and a note.
//!
//! The live aggregates keep folding every event, so the later, open years of a level
//! still move with an event that occurred in a closed year, and `replay` compares the
//! live aggregates as before. The close is a record beside them: the frozen figures of
//! the year. Wherever figures are shown, [`Closes::settle`] puts the frozen figure in
//! place of the live one and keeps the live value beside it: the difference is the
//! adjustment since the close (確定後の修正). Whether an event counts in the final figure
//! or as an adjustment is decided by its arrival (`event_log.received_at`) against the
//! close instant (`closed_at`, on the same clock): the store takes the close instant
//! under the lock every batch's write takes, so each batch is wholly before or after.
//!
//! This module is pure: the stores read and write the records (`store::close`).

use std::collections::BTreeMap;

use mieruka_ingest::Timestamp;
use serde::{Deserialize, Serialize};

use crate::figures::Figure;
use crate::fiscal::FiscalYear;
use crate::plan::{KpiId, Plan};

/// Whether a figure may still change.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Finality {
    /// 速報値: the year is open, or has ended without being closed.
    #[default]
    Provisional,
    /// 確定値: frozen by a close; `live` is what the aggregates say now.
    Final {
        /// When the year was closed (µs, the clock of `event_log.received_at`).
        closed_at: Timestamp,
        /// The live value now, which events that arrived after the close moved.
        live: Option<f64>,
    },
}

impl Finality {
    /// Whether the figure is final.
    pub fn is_final(self) -> bool {
        matches!(self, Finality::Final { .. })
    }

    /// The Japanese word.
    pub fn ja(self) -> &'static str {
        if self.is_final() {
            "確定値"
        } else {
            "速報値"
        }
    }

    /// The English word.
    pub fn en(self) -> &'static str {
        if self.is_final() {
            "Final"
        } else {
            "Provisional"
        }
    }
}

impl Figure {
    /// The change of a final figure since its close (live − final); `None` for a
    /// provisional figure, or where either value is absent.
    pub fn adjustment(&self) -> Option<f64> {
        match self.finality {
            Finality::Final {
                live: Some(live), ..
            } => self.value.map(|v| live - v),
            _ => None,
        }
    }
}

/// One closed fiscal year.
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedYear {
    /// The year.
    pub year: FiscalYear,
    /// When it was closed (µs since the epoch, the clock of `event_log.received_at`).
    pub closed_at: Timestamp,
    /// Who closed it.
    pub operator: String,
    /// Why, in the operator's words.
    pub note: String,
    /// The plan's measure fingerprint at the close.
    pub plan_fingerprint: String,
    /// The frozen figures, one per KPI the plan still has (marked final, live unset).
    pub finals: Vec<Figure>,
}

impl ClosedYear {
    /// Why closing this year again is refused.
    pub fn refusal(&self) -> CloseRefusal {
        CloseRefusal::AlreadyClosed {
            year: self.year,
            closed_at: self.closed_at,
            operator: self.operator.clone(),
            note: self.note.clone(),
        }
    }
}

/// Every closed year of a store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Closes {
    /// By year.
    pub years: BTreeMap<FiscalYear, ClosedYear>,
}

impl Closes {
    /// The close of `year`, if it is closed.
    pub fn get(&self, year: FiscalYear) -> Option<&ClosedYear> {
        self.years.get(&year)
    }

    /// Puts each closed year's final figure in place of the live one, keeping the live
    /// value beside it ([`Finality::Final`]). Only figures of a year that has ended at
    /// `at` are settled (a figure as of a day inside the year is that day's, not the
    /// year's); a KPI added to the plan after the close has no final figure and stays
    /// provisional.
    pub fn settle(&self, figures: &mut [Figure], at: Timestamp) {
        for fig in figures.iter_mut() {
            if at < fig.year.end() {
                continue;
            }
            let Some(close) = self.years.get(&fig.year) else {
                continue;
            };
            let Some(frozen) = close.finals.iter().find(|f| f.kpi == fig.kpi) else {
                continue;
            };
            let live = fig.value;
            *fig = Figure {
                finality: Finality::Final {
                    closed_at: close.closed_at,
                    live,
                },
                ..frozen.clone()
            };
        }
    }
}

/// Why a close or a reopen was refused: the operator asked for something that cannot be.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CloseRefusal {
    /// The year has not ended at `now`.
    #[error("FY{year} has not ended: it runs until {end} and now is {now}; a year is closed once it has ended")]
    NotEnded {
        year: FiscalYear,
        end: Timestamp,
        now: Timestamp,
    },
    /// The plan does not export the year.
    #[error("FY{0} is outside the plan ({1} to {2})")]
    OutsidePlan(FiscalYear, FiscalYear, FiscalYear),
    /// The year is closed already.
    #[error("FY{year} is already closed (at {closed_at} by {operator}: {note:?}); `mieruka reopen-year {year}` first to close it again")]
    AlreadyClosed {
        year: FiscalYear,
        closed_at: Timestamp,
        operator: String,
        note: String,
    },
    /// The year is not closed (reopen).
    #[error("FY{0} is not closed: there is nothing to reopen")]
    NotClosed(FiscalYear),
}

/// A close or a reopen, as the operator asked for it.
#[derive(Clone, Debug)]
pub struct CloseRequest {
    /// The year.
    pub year: FiscalYear,
    /// "Now" (the wall clock or `--now`): the year must have ended by then.
    pub now: Timestamp,
    /// Who asks.
    pub operator: String,
    /// Why.
    pub note: String,
}

impl CloseRequest {
    /// Refuses a year the plan does not export, or one that has not ended at `now`.
    pub fn check(&self, plan: &Plan) -> Result<(), CloseRefusal> {
        let first = plan.first_year.min(plan.baseline_year);
        if self.year < first || self.year > plan.last_year {
            return Err(CloseRefusal::OutsidePlan(self.year, first, plan.last_year));
        }
        if self.now < self.year.end() {
            return Err(CloseRefusal::NotEnded {
                year: self.year,
                end: self.year.end(),
                now: self.now,
            });
        }
        Ok(())
    }
}

/// What a reopen dropped: the close, and the live figures that now stand.
#[derive(Clone, Debug)]
pub struct Reopened {
    /// The close that was removed.
    pub dropped: ClosedYear,
    /// The year's live figures now, one per KPI.
    pub live: Vec<Figure>,
}

/// A figure as a store keeps it: everything but its KPI and year (columns of their own).
/// Numbers are kept as decimal text (Rust's shortest form that reads back as the same
/// f64): serde_json's default float parsing may be one ulp off, and a final figure must
/// read back bit for bit.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Frozen {
    #[serde(with = "exact")]
    pub value: Option<f64>,
    #[serde(with = "exact")]
    pub target: Option<f64>,
    #[serde(with = "exact")]
    pub baseline: Option<f64>,
    #[serde(with = "exact")]
    pub start: Option<f64>,
    #[serde(with = "exact")]
    pub pace: Option<f64>,
    #[serde(with = "exact")]
    pub projection: Option<f64>,
    #[serde(with = "exact")]
    pub attainment: Option<f64>,
    #[serde(with = "exact")]
    pub drift: Option<f64>,
    pub on_track: Option<bool>,
    #[serde(with = "exact")]
    pub tolerance: Option<f64>,
    #[serde(with = "exact")]
    pub elapsed: Option<f64>,
    /// µs since the epoch.
    pub as_of: Option<i64>,
}

/// An `Option<f64>` as decimal text that reads back exactly.
mod exact {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => s.serialize_some(&x.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| t.parse::<f64>().map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl Frozen {
    /// The stored form of `f`.
    pub fn of(f: &Figure) -> Self {
        Frozen {
            value: f.value,
            target: f.target,
            baseline: f.baseline,
            start: f.start,
            pace: f.pace,
            projection: f.projection,
            attainment: f.attainment,
            drift: f.drift,
            on_track: f.on_track,
            tolerance: Some(f.tolerance),
            elapsed: Some(f.elapsed),
            as_of: f.as_of.map(Timestamp::micros),
        }
    }

    /// Back to a figure of `kpi` in `year`, final as of `closed_at`.
    pub fn thaw(self, kpi: KpiId, year: FiscalYear, closed_at: Timestamp) -> Figure {
        Figure {
            kpi,
            year,
            value: self.value,
            target: self.target,
            baseline: self.baseline,
            start: self.start,
            pace: self.pace,
            projection: self.projection,
            attainment: self.attainment,
            drift: self.drift,
            on_track: self.on_track,
            tolerance: self.tolerance.unwrap_or_default(),
            elapsed: self.elapsed.unwrap_or(1.0),
            as_of: self.as_of.map(Timestamp::from_micros),
            finality: Finality::Final {
                closed_at,
                live: None,
            },
        }
    }
}

/// One KPI's line of what a close or a reopen changed (kept in `year_close_log`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Change {
    /// The KPI's id.
    pub kpi: String,
    /// The final figure (frozen by a close, dropped by a reopen).
    pub final_value: Option<f64>,
    /// The live value at that instant.
    pub live_value: Option<f64>,
}

/// An event (or void) that arrived after its year was closed: an adjustment.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LateEvent {
    pub source: String,
    pub event_id: String,
    /// The event type (`event.voided` for a void).
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339.
    pub occurred_at: String,
    /// RFC 3339: after the close.
    pub received_at: String,
    /// The event a void retracts.
    pub voids: Option<String>,
}

/// What the adjustment list looks for.
#[derive(Clone, Copy, Debug)]
pub struct LateQuery<'a> {
    /// Event types that feed the KPI (a void counts when its original is of one).
    pub types: &'a [String],
    /// Events that occurred at or after this instant (the year's start; for a level, the
    /// beginning of time, as earlier events carry into the year)...
    pub from: Timestamp,
    /// ...and before this one (the year's end).
    pub before: Timestamp,
    /// Received strictly after this instant (the close).
    pub received_after: Timestamp,
    /// At most this many are listed (all are counted).
    pub limit: i64,
}

/// The adjustments found: the first `limit`, by arrival, and how many there are.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct LateEvents {
    /// How many events and voids arrived after the close.
    pub total: i64,
    /// The first ones, by arrival.
    pub listed: Vec<LateEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(year: i32, value: Option<f64>) -> Figure {
        Figure {
            kpi: KpiId(0),
            year: FiscalYear(year),
            value,
            target: Some(10.0),
            baseline: None,
            start: Some(0.0),
            pace: Some(10.0),
            projection: value,
            attainment: None,
            drift: None,
            on_track: Some(true),
            tolerance: 0.0,
            elapsed: 1.0,
            as_of: None,
            finality: Finality::Provisional,
        }
    }

    fn closes(value: Option<f64>) -> Closes {
        let closed_at = Timestamp::from_unix_seconds(1_800_000_000);
        let frozen = Frozen::of(&fig(2025, value)).thaw(KpiId(0), FiscalYear(2025), closed_at);
        let mut c = Closes::default();
        c.years.insert(
            FiscalYear(2025),
            ClosedYear {
                year: FiscalYear(2025),
                closed_at,
                operator: "tanaka".into(),
                note: "council".into(),
                plan_fingerprint: "x".into(),
                finals: vec![frozen],
            },
        );
        c
    }

    #[test]
    fn a_closed_year_shows_its_final_figure_and_the_change_since() {
        let mut figs = vec![fig(2025, Some(12.0)), fig(2026, Some(3.0))];
        closes(Some(10.0)).settle(&mut figs, FiscalYear(2026).start());
        assert_eq!(figs[0].value, Some(10.0));
        assert_eq!(figs[0].adjustment(), Some(2.0));
        assert!(figs[0].finality.is_final());
        assert_eq!(figs[1].finality, Finality::Provisional);
        assert_eq!(figs[1].adjustment(), None);
    }

    #[test]
    fn a_figure_as_of_a_day_inside_a_closed_year_stays_provisional() {
        let mut figs = vec![fig(2025, Some(12.0))];
        closes(Some(10.0)).settle(&mut figs, FiscalYear(2025).start());
        assert_eq!(figs[0].value, Some(12.0));
        assert_eq!(figs[0].finality, Finality::Provisional);
    }

    #[test]
    fn no_adjustment_where_the_final_or_the_live_value_is_absent() {
        let mut figs = vec![fig(2025, None)];
        closes(Some(10.0)).settle(&mut figs, FiscalYear(2026).start());
        assert_eq!(figs[0].adjustment(), None);
        let mut figs = vec![fig(2025, Some(3.0))];
        closes(None).settle(&mut figs, FiscalYear(2026).start());
        assert_eq!(figs[0].adjustment(), None);
        assert!(figs[0].finality.is_final());
    }

    #[test]
    fn a_year_is_closed_only_once_it_has_ended() {
        let plan = Plan::ome().unwrap();
        let req = |now: Timestamp| CloseRequest {
            year: FiscalYear(2025),
            now,
            operator: "o".into(),
            note: "n".into(),
        };
        let end = FiscalYear(2025).end();
        assert!(matches!(
            req(Timestamp::from_micros(end.micros() - 1)).check(&plan),
            Err(CloseRefusal::NotEnded { .. })
        ));
        assert_eq!(req(end).check(&plan), Ok(()));
        let far = CloseRequest {
            year: FiscalYear(1999),
            ..req(end)
        };
        assert!(matches!(
            far.check(&plan),
            Err(CloseRefusal::OutsidePlan(..))
        ));
    }

    #[test]
    fn a_frozen_figure_reads_back_as_itself() {
        // A value serde_json's default float parsing reads one ulp off.
        let f = fig(2025, Some(0.003_846_627_277_203_348_4));
        let text = serde_json::to_string(&Frozen::of(&f)).unwrap();
        let back: Frozen = serde_json::from_str(&text).unwrap();
        let at = Timestamp::from_unix_seconds(1);
        assert_eq!(
            back.thaw(f.kpi, f.year, at),
            Figure {
                finality: Finality::Final {
                    closed_at: at,
                    live: None
                },
                ..f
            }
        );
    }
}
