//! A KPI's dated target revisions (`[[kpi.revisions]]`): each revises one year's target
//! from a day on, by a council decision. The original `targets` stay as written; the
//! figures use the target in force ([`super::Kpi::target_at`]).
//!
//! Checked here against the plan's years, the original targets and the kind of KPI, so
//! that `mieruka plan check` refuses a revision the figures could not use.

use std::collections::{BTreeMap, HashMap};

use super::error::Errors;
use super::file::{KpiDecl, RevisionDecl};
use super::kpis::KpiKey;
use super::model::{KpiKind, Revision};
use crate::fiscal::{Day, FiscalYear};

/// Compiles a KPI's revisions, sorted by year then date; `targets` are its original
/// targets and `years` the plan's (first, last) year. Bad revisions are reported and
/// left out.
pub(super) fn compile_revisions(
    k: &KpiDecl,
    kind: &KpiKind,
    targets: &BTreeMap<FiscalYear, Option<f64>>,
    years: (FiscalYear, FiscalYear),
    key: &KpiKey,
    errs: &mut Errors<'_>,
) -> Vec<Revision> {
    let mut out = Vec::new();
    let mut seen: HashMap<(FiscalYear, Day), usize> = HashMap::new();
    for (i, r) in k.revisions.iter().enumerate() {
        let at = |f: &str| key.of(&format!("revisions[{i}].{f}"));
        if matches!(kind, KpiKind::Milestone { .. }) {
            // A milestone's target is a stage with a due date, and its overdue alert is
            // compiled from both: revising one without the other would leave the alert
            // judging the old stage. A plan edit of `targets` and `due` says both.
            errs.at(
                Some(r.fiscal_year.span()),
                at("fiscal_year"),
                "a milestone's target is a stage due by a date: change its `targets` and `due` \
                 instead (revisions are for numeric targets)",
            );
            continue;
        }
        let year = year(r, targets, years, &at, errs);
        let target = target(r, k, kind, &at, errs);
        let from = from(r, year, &at, errs);
        let decision = decision(r, &at, errs);
        let (Some(year), Some(target), Some(from), Some(decision)) = (year, target, from, decision)
        else {
            continue;
        };
        if let Some(first) = seen.insert((year, from), i) {
            errs.at(
                Some(r.from.span()),
                at("from"),
                format!(
                    "FY{year} is already revised from {from} by revisions[{first}]: one revision \
                     per year and day"
                ),
            );
            continue;
        }
        out.push(Revision {
            year,
            target,
            from,
            decision,
        });
    }
    out.sort_by_key(|r| (r.year, r.from));
    out
}

/// The revised year: one of the plan's, with an original target to revise.
fn year(
    r: &RevisionDecl,
    targets: &BTreeMap<FiscalYear, Option<f64>>,
    (first, last): (FiscalYear, FiscalYear),
    at: &dyn Fn(&str) -> String,
    errs: &mut Errors<'_>,
) -> Option<FiscalYear> {
    let y = *r.fiscal_year.get_ref();
    let Some(fy) = i32::try_from(y)
        .ok()
        .filter(|y| (first.0..=last.0).contains(y))
        .map(FiscalYear)
    else {
        errs.at(
            Some(r.fiscal_year.span()),
            at("fiscal_year"),
            format!(
                "the plan runs FY{}–FY{}; {y} is outside it",
                first.0, last.0
            ),
        );
        return None;
    };
    if targets.get(&fy).copied().flatten().is_none() {
        errs.at(
            Some(r.fiscal_year.span()),
            at("fiscal_year"),
            format!(
                "FY{fy} has no target in `targets` (it is \"unset\"): a revision revises a \
                 target, so give the year its original target first"
            ),
        );
        return None;
    }
    Some(fy)
}

/// The revised target: a finite number, within 0–100 for a percentage, at least 1 for
/// a recurring duty.
fn target(
    r: &RevisionDecl,
    k: &KpiDecl,
    kind: &KpiKind,
    at: &dyn Fn(&str) -> String,
    errs: &mut Errors<'_>,
) -> Option<f64> {
    let t = *r.target.get_ref();
    let problem = if !t.is_finite() {
        Some("must be a finite number".to_owned())
    } else if k.unit == "%" && !(0.0..=100.0).contains(&t) {
        Some(format!("{t} is not a percentage: expected 0 to 100"))
    } else if matches!(kind, KpiKind::Recurring(_)) && t < 1.0 {
        Some("a recurring duty's target is at least 1 per year".to_owned())
    } else {
        None
    };
    match problem {
        Some(message) => {
            errs.at(Some(r.target.span()), at("target"), message);
            None
        }
        None => Some(t),
    }
}

/// The day the revision is in force from: a date `YYYY-MM-DD` (quoted, or a bare TOML
/// local date), not after the last day of the year it revises.
fn from(
    r: &RevisionDecl,
    year: Option<FiscalYear>,
    at: &dyn Fn(&str) -> String,
    errs: &mut Errors<'_>,
) -> Option<Day> {
    let text = match r.from.get_ref() {
        toml::Value::String(s) => s.clone(),
        // A bare date reads as itself; a date with a time fails the parse below.
        toml::Value::Datetime(d) => d.to_string(),
        other => other.type_str().to_owned(),
    };
    let Ok(day) = text.parse::<Day>() else {
        errs.at(
            Some(r.from.span()),
            at("from"),
            format!("{text}: expected a date YYYY-MM-DD (JST) from which the revised target is in force"),
        );
        return None;
    };
    if let Some(fy) = year {
        if day > fy.last_day() {
            errs.at(
                Some(r.from.span()),
                at("from"),
                format!(
                    "FY{fy} ended on {}: a revision from {day} would change the target of a year \
                     that is over",
                    fy.last_day()
                ),
            );
            return None;
        }
    }
    Some(day)
}

/// The decision that revised the target: required, and not blank.
fn decision(
    r: &RevisionDecl,
    at: &dyn Fn(&str) -> String,
    errs: &mut Errors<'_>,
) -> Option<String> {
    match &r.decision {
        Some(d) if !d.get_ref().trim().is_empty() => Some(d.get_ref().trim().to_owned()),
        Some(d) => {
            errs.at(
                Some(d.span()),
                at("decision"),
                "must name the decision that revised the target (e.g. 令和9年第2回定例会で改定)",
            );
            None
        }
        None => {
            errs.at(
                Some(r.fiscal_year.span()),
                at("decision"),
                "required: the decision that revised the target (e.g. 令和9年第2回定例会で改定)",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use mieruka_ingest::Timestamp;

    use crate::fiscal::FiscalYear;
    use crate::plan::{Plan, PlanErrors};

    /// A plan with a percentage ratio (`rate`), a recurring duty (`duty`) and a
    /// milestone (`stage`), without revisions.
    fn template() -> String {
        r#"
[plan]
id = "t"
name_ja = "t"
name_en = "t"
baseline_year = 2025
first_year = 2026
last_year = 2028

[chapters."1"]
name_ja = "章"
name_en = "Chapter"

[event_types."a.happened"]
fields.count = { kind = "int", min = 1 }

[event_types."milestone.reached"]
fields.kpi = { kind = "id" }
fields.stage = { kind = "stage", of = "kpi" }

[measures.done]
kind = "sum"
type = "a.happened"
field = "count"

[measures.all]
kind = "events"
type = "a.happened"

[[kpi]]
id = "rate"
name_ja = "率"
name_en = "Rate"
chapter = "1"
unit = "%"
direction = "up"
kind = "ratio"
numerator = "done"
denominator = "all"
targets = { 2026 = 40.0, 2027 = 44.0, 2028 = "unset" }

[[kpi]]
id = "duty"
name_ja = "毎年度"
name_en = "Duty"
chapter = "1"
unit = "times / FY"
direction = "up"
kind = "recurring"
measure = "done"
targets = { 2026 = 1, 2027 = 1, 2028 = 1 }

[[kpi]]
id = "stage"
name_ja = "段階"
name_en = "Stage"
chapter = "1"
unit = "stage"
direction = "up"
kind = "milestone"
stages = [{ id = "none", name_ja = "未" }, { id = "done", name_ja = "済" }]
targets = { 2026 = "done", 2027 = "done", 2028 = "done" }
"#
        .to_owned()
    }

    /// The test plan's text with `toml` placed right after the `[[kpi]]` table `id`
    /// (a `[[kpi.revisions]]` table belongs to the `[[kpi]]` above it).
    fn text_with(id: &str, toml: &str) -> String {
        let base = template();
        let at = base.find(&format!("id = \"{id}\"")).unwrap();
        let end = base[at..].find("\n[[kpi]]").map_or(base.len(), |e| at + e);
        format!("{}\n{toml}{}", &base[..end], &base[end..])
    }

    /// The test plan with `revisions` under `rate`.
    fn plan_with(revisions: &str) -> Result<Plan, PlanErrors> {
        Plan::parse("revised.toml", &text_with("rate", revisions))
    }

    fn revision(year: i32, target: f64, from: &str) -> String {
        format!(
            "[[kpi.revisions]]\nfiscal_year = {year}\ntarget = {target:?}\nfrom = \"{from}\"\ndecision = \"令和9年第2回定例会で改定\"\n"
        )
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    /// The messages of a plan that must not load (`toml` under KPI `id`), as
    /// `key: message`.
    fn problems_under(id: &str, toml: &str) -> Vec<String> {
        match Plan::parse("revised.toml", &text_with(id, toml)) {
            Ok(_) => panic!("the plan loaded:\n{toml}"),
            Err(e) => e
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect(),
        }
    }

    #[test]
    fn the_revised_target_is_in_force_from_the_start_of_its_day_in_jst() {
        let plan = plan_with(&revision(2027, 46.0, "2027-06-15")).unwrap();
        let rate = plan.kpi("rate").unwrap();
        let fy = FiscalYear(2027);
        assert_eq!(rate.target(fy), Some(44.0), "the original target stays");
        assert_eq!(
            rate.target_at(fy, ts("2027-06-14T23:59:59+09:00")),
            Some(44.0)
        );
        assert_eq!(
            rate.target_at(fy, ts("2027-06-15T00:00:00+09:00")),
            Some(46.0)
        );
        // 2027-06-14T15:00Z is already the 15th in Tokyo.
        assert_eq!(rate.target_at(fy, ts("2027-06-14T15:00:00Z")), Some(46.0));
        assert_eq!(
            rate.target_at(fy, ts("2027-12-01T00:00:00+09:00")),
            Some(46.0)
        );
        // An ended year keeps its last target in force, however late `now` is.
        assert_eq!(
            rate.target_at(fy, ts("2031-01-01T00:00:00+09:00")),
            Some(46.0)
        );
    }

    #[test]
    fn two_revisions_of_a_year_take_turns_and_other_years_are_untouched() {
        // Written out of order: the plan sorts them by day.
        let plan = plan_with(&format!(
            "{}{}",
            revision(2027, 48.0, "2027-12-20"),
            revision(2027, 46.0, "2027-06-15")
        ))
        .unwrap();
        let rate = plan.kpi("rate").unwrap();
        let fy = FiscalYear(2027);
        assert_eq!(
            rate.target_at(fy, ts("2027-05-01T00:00:00+09:00")),
            Some(44.0)
        );
        assert_eq!(
            rate.target_at(fy, ts("2027-07-01T00:00:00+09:00")),
            Some(46.0)
        );
        assert_eq!(
            rate.target_at(fy, ts("2027-12-20T00:00:00+09:00")),
            Some(48.0)
        );
        let late = ts("2028-06-01T00:00:00+09:00");
        assert_eq!(rate.target_at(FiscalYear(2026), late), Some(40.0));
        assert_eq!(rate.target_at(FiscalYear(2028), late), None);
        let steps: Vec<(Option<f64>, f64)> = rate
            .revision_steps()
            .iter()
            .map(|s| (s.previous, s.revision.target))
            .collect();
        assert_eq!(steps, [(Some(44.0), 46.0), (Some(46.0), 48.0)]);
        assert!(plan.kpi("duty").unwrap().revisions.is_empty());
    }

    #[test]
    fn a_revision_dated_before_its_year_is_in_force_from_the_year_start() {
        let plan = plan_with(&revision(2027, 45.0, "2027-03-20")).unwrap();
        let rate = plan.kpi("rate").unwrap();
        let start = FiscalYear(2027).start();
        assert_eq!(rate.target_at(FiscalYear(2027), start), Some(45.0));
        assert_eq!(
            rate.target_at(FiscalYear(2026), start),
            Some(40.0),
            "the year before is not the one revised"
        );
    }

    #[test]
    fn a_bare_toml_date_is_read_like_a_quoted_one() {
        let text = revision(2027, 46.0, "2027-06-15").replace("\"2027-06-15\"", "2027-06-15");
        let plan = plan_with(&text).unwrap();
        assert_eq!(
            plan.kpi("rate").unwrap().revisions[0].from.to_string(),
            "2027-06-15"
        );
    }

    #[test]
    fn each_bad_revision_is_named_with_its_kpi_index_and_field() {
        let cases = [
            (
                revision(2031, 46.0, "2031-06-15"),
                "kpi[0] (rate).revisions[0].fiscal_year: the plan runs FY2026–FY2028; 2031 is outside it",
            ),
            (
                revision(2028, 46.0, "2028-06-15"),
                "kpi[0] (rate).revisions[0].fiscal_year: FY2028 has no target",
            ),
            (
                revision(2027, 46.0, "2027-06-31"),
                "kpi[0] (rate).revisions[0].from: 2027-06-31: expected a date YYYY-MM-DD",
            ),
            (
                revision(2027, 46.0, "2028-04-01"),
                "kpi[0] (rate).revisions[0].from: FY2027 ended on 2028-03-31",
            ),
            (
                revision(2027, 146.0, "2027-06-15"),
                "kpi[0] (rate).revisions[0].target: 146 is not a percentage",
            ),
            (
                format!(
                    "{}{}",
                    revision(2027, 46.0, "2027-06-15"),
                    revision(2027, 47.0, "2027-06-15")
                ),
                "kpi[0] (rate).revisions[1].from: FY2027 is already revised from 2027-06-15 by revisions[0]",
            ),
            (
                revision(2027, 46.0, "2027-06-15").replace("令和9年第2回定例会で改定", " "),
                "kpi[0] (rate).revisions[0].decision: must name the decision",
            ),
            (
                "[[kpi.revisions]]\nfiscal_year = 2027\ntarget = 46.0\nfrom = \"2027-06-15\"\n"
                    .to_owned(),
                "kpi[0] (rate).revisions[0].decision: required",
            ),
        ];
        for (toml, want) in cases {
            let got = problems_under("rate", &toml);
            assert_eq!(got.len(), 1, "{toml}\n{got:?}");
            assert!(
                got[0].starts_with(want),
                "{toml}\ngot:  {}\nwant: {want}",
                got[0]
            );
        }
    }

    #[test]
    fn milestones_and_recurring_duties_refuse_what_makes_no_sense() {
        let got = problems_under("stage", &revision(2027, 1.0, "2027-06-15"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(
                "kpi[2] (stage).revisions[0].fiscal_year: a milestone's target is a stage"
            ),
            "{got:?}"
        );
        let got = problems_under("duty", &revision(2027, 0.0, "2027-06-15"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(
                "kpi[1] (duty).revisions[0].target: a recurring duty's target is at least 1"
            ),
            "{got:?}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the revisions (days in any order, before or inside the year) and the
        /// instant, the target in force is that of the revision with the latest day on or
        /// before the instant's JST day, else the original; and every figure the engine
        /// computes carries it.
        #[test]
        fn the_target_in_force_is_the_latest_begun_revision(
            revs in proptest::collection::btree_map(0i32..456, 0u32..10_000, 0..5),
            secs in 0i64..(4 * 366 * 86_400),
        ) {
            // Days from 2027-01-01 (before FY2027) to 2028-03-31 (its last day).
            let first = "2027-01-01".parse::<crate::fiscal::Day>().unwrap().0;
            let mut toml = String::new();
            for (offset, hundredths) in revs.iter().rev() {
                let day = crate::fiscal::Day(first + offset);
                toml.push_str(&revision(2027, f64::from(*hundredths) / 100.0, &day.to_string()));
            }
            let plan = plan_with(&toml).unwrap();
            let rate = plan.kpi("rate").unwrap();
            let now = Timestamp::from_micros(
                FiscalYear(2026).start().micros() + secs * 1_000_000,
            );
            let today = crate::fiscal::Day::of(now).0 - first;
            let want = revs
                .range(..=today)
                .next_back()
                .map_or(44.0, |(_, h)| f64::from(*h) / 100.0);
            proptest::prop_assert_eq!(rate.target_at(FiscalYear(2027), now), Some(want));
            proptest::prop_assert_eq!(rate.target_at(FiscalYear(2026), now), Some(40.0));
            let figures = crate::figures::figures(&plan, &crate::ledger::Ledger::default(), now);
            for f in figures {
                let kpi = &plan.kpis[f.kpi];
                proptest::prop_assert_eq!(f.target, kpi.target_at(f.year, now));
            }
        }
    }
}
