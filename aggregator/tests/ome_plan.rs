//! The shipped Ome plan (`plans/ome.toml`) against the plan itself, as read out of the
//! city's published plan document (the tables below are that reading): every KPI with its chapter, unit, direction, baseline and yearly
//! targets; every milestone's stages in order; every event type of the docs/architecture.md
//! catalogue. And broken copies of the plan fail with the line and the key at fault.

use mieruka_aggregator::plan::{KpiKind, MeasureId, Plan, PlanError, OME_PLAN};
use mieruka_aggregator::{Direction, FiscalYear};
use mieruka_ingest::schema::FieldKind;
use mieruka_ingest::{decode, Reason};

const YEARS: [FiscalYear; 3] = [FiscalYear(2026), FiscalYear(2027), FiscalYear(2028)];

/// What a numeric KPI is made of.
#[derive(Debug)]
enum Made {
    /// numerator / denominator × 100.
    Ratio(&'static str, &'static str),
    /// One measure.
    Measure(&'static str),
    /// A per-FY duty.
    Recurring(&'static str),
}

/// A numeric KPI as the plan document gives it.
struct Numeric {
    id: &'static str,
    chapter: &'static str,
    unit: &'static str,
    direction: Direction,
    made: Made,
    baseline: Option<f64>,
    targets: [Option<f64>; 3],
}

const UP: Direction = Direction::Up;

/// The plan document's numeric KPIs, plus the two recurring duties among its milestones.
const NUMERIC: &[Numeric] = &[
    Numeric {
        id: "mynumber_card_holding_rate",
        chapter: "1",
        unit: "%",
        direction: UP,
        made: Made::Ratio("card_holders", "population"),
        baseline: Some(82.0),
        targets: [Some(84.6), Some(85.8), Some(86.8)],
    },
    Numeric {
        id: "konbini_issuance_rate",
        chapter: "1",
        unit: "%",
        direction: UP,
        made: Made::Ratio("certificates_konbini", "certificates_all"),
        baseline: Some(41.2),
        targets: [Some(43.7), Some(44.8), Some(45.7)],
    },
    Numeric {
        id: "taxi_subsidy_card_registration_rate",
        chapter: "1",
        unit: "%",
        direction: UP,
        made: Made::Ratio("taxi_card_registrations", "taxi_eligible"),
        baseline: Some(17.2),
        targets: [Some(23.0), Some(29.0), Some(35.0)],
    },
    Numeric {
        id: "online_procedure_coverage",
        chapter: "1",
        unit: "%",
        direction: UP,
        made: Made::Ratio("procedures_online", "procedures_in_scope"),
        baseline: Some(83.0),
        targets: [Some(90.0), Some(95.0), Some(100.0)],
    },
    Numeric {
        id: "online_procedure_usage_rate",
        chapter: "1",
        unit: "%",
        direction: UP,
        made: Made::Ratio("applications_online", "applications_all"),
        baseline: Some(62.0),
        targets: [Some(65.0), Some(67.0), Some(70.0)],
    },
    Numeric {
        id: "umekko_new_registrations",
        chapter: "1",
        unit: "people / FY",
        direction: UP,
        made: Made::Measure("umekko_registrations"),
        baseline: Some(310.0),
        targets: [Some(450.0), Some(450.0), Some(450.0)],
    },
    Numeric {
        id: "invoice_online_vendors",
        chapter: "1",
        unit: "companies",
        direction: UP,
        made: Made::Measure("invoice_vendors"),
        // 未導入, read as 0; FY2026 is the stage システム構築 (no number).
        baseline: Some(0.0),
        targets: [None, Some(20.0), Some(40.0)],
    },
    Numeric {
        id: "a4_paper_sheets_purchased",
        chapter: "2",
        unit: "sheets / FY",
        direction: Direction::Down,
        made: Made::Measure("a4_sheets"),
        baseline: None,
        targets: [None, None, None],
    },
    Numeric {
        id: "e_approval_rate",
        chapter: "2",
        unit: "%",
        direction: UP,
        made: Made::Ratio("approvals_electronic", "approvals_hatsui"),
        baseline: None,
        targets: [None, None, None],
    },
    Numeric {
        id: "bpr_hours_saved",
        chapter: "2",
        unit: "hours / FY",
        direction: UP,
        made: Made::Measure("bpr_hours"),
        baseline: Some(6070.0),
        targets: [Some(10000.0), Some(10000.0), Some(10000.0)],
    },
    Numeric {
        id: "telework_rate",
        chapter: "2",
        unit: "%",
        direction: UP,
        made: Made::Ratio("telework_staff", "headcount"),
        baseline: Some(11.0),
        targets: [Some(20.0), Some(30.0), Some(40.0)],
    },
    Numeric {
        id: "security_measures",
        chapter: "2",
        unit: "reviews / FY",
        direction: UP,
        made: Made::Recurring("security_reviews"),
        baseline: None,
        targets: [Some(1.0), Some(1.0), Some(1.0)],
    },
    Numeric {
        id: "senior_digital_class_participants",
        chapter: "3",
        unit: "participants / FY",
        direction: UP,
        made: Made::Measure("senior_class_participants"),
        baseline: Some(108.0),
        targets: [Some(100.0), Some(100.0), Some(100.0)],
    },
    Numeric {
        id: "open_datasets_published",
        chapter: "3",
        unit: "data sets",
        direction: UP,
        made: Made::Measure("open_datasets"),
        baseline: Some(42.0),
        targets: [Some(46.0), Some(50.0), Some(54.0)],
    },
    Numeric {
        id: "esports_events",
        chapter: "3",
        unit: "events / FY",
        direction: UP,
        made: Made::Recurring("esports_events"),
        baseline: None,
        targets: [Some(1.0), Some(1.0), Some(1.0)],
    },
    Numeric {
        id: "umepon_registrations",
        chapter: "3",
        unit: "people",
        direction: UP,
        made: Made::Measure("umepon_users"),
        baseline: Some(4331.0),
        // FY2028: さらなる増加を図る, no number.
        targets: [Some(7500.0), Some(10000.0), None],
    },
];

/// A milestone KPI as the plan document gives it: stage ids in order, and the stage of the
/// baseline and of each year's target (None where the plan does not say).
struct Milestone {
    id: &'static str,
    chapter: &'static str,
    stages: &'static [&'static str],
    baseline: Option<&'static str>,
    targets: [Option<&'static str>; 3],
}

/// The plan document's milestone KPIs (without the two recurring duties).
const MILESTONES: &[Milestone] = &[
    Milestone {
        id: "library_card_with_mynumber",
        chapter: "1",
        stages: &["not_introduced", "preparing_and_introducing"],
        baseline: Some("not_introduced"),
        targets: [None, None, None],
    },
    Milestone {
        id: "disposition_notice_online",
        chapter: "1",
        stages: &[
            "not_introduced",
            "research",
            "pilot_and_launch",
            "more_procedures",
        ],
        baseline: Some("not_introduced"),
        targets: [
            Some("research"),
            Some("pilot_and_launch"),
            Some("more_procedures"),
        ],
    },
    Milestone {
        id: "invoice_online",
        chapter: "1",
        stages: &[
            "not_introduced",
            "system_build",
            "in_use_20_vendors",
            "vendors_40",
        ],
        baseline: Some("not_introduced"),
        targets: [
            Some("system_build"),
            Some("in_use_20_vendors"),
            Some("vendors_40"),
        ],
    },
    Milestone {
        id: "el_qr_public_funds",
        chapter: "1",
        stages: &[
            "taxes_in_use",
            "care_and_elderly_medical_premiums",
            "other_public_funds",
        ],
        baseline: Some("taxes_in_use"),
        targets: [Some("care_and_elderly_medical_premiums"), None, None],
    },
    Milestone {
        id: "generative_ai_tools",
        chapter: "2",
        stages: &["enhanced_tools_in_use"],
        baseline: None,
        targets: [None, None, None],
    },
    Milestone {
        id: "standardization_transitional_systems",
        chapter: "2",
        stages: &["notified", "migrated"],
        baseline: Some("notified"),
        targets: [None, None, None],
    },
];

/// The plan document's chapters: every KPI id, chapter by chapter, in the file's order.
const CHAPTER_ORDER: &[&str] = &[
    "mynumber_card_holding_rate",
    "konbini_issuance_rate",
    "taxi_subsidy_card_registration_rate",
    "library_card_with_mynumber",
    "online_procedure_coverage",
    "online_procedure_usage_rate",
    "umekko_new_registrations",
    "disposition_notice_online",
    "invoice_online",
    "invoice_online_vendors",
    "el_qr_public_funds",
    "generative_ai_tools",
    "a4_paper_sheets_purchased",
    "e_approval_rate",
    "bpr_hours_saved",
    "telework_rate",
    "standardization_transitional_systems",
    "security_measures",
    "senior_digital_class_participants",
    "open_datasets_published",
    "esports_events",
    "umepon_registrations",
];

/// the event catalogue every line system of Ome sends (docs/architecture.md, "Events", shows one), its snapshot additions, and the security reviews.
const CATALOGUE: &[&str] = &[
    "certificate.issued",
    "mynumber_card.issued",
    "mynumber_card.surrendered",
    "mynumber_card.holders_snapshot",
    "population.snapshot",
    "application.submitted",
    "procedure.catalog_snapshot",
    "paper.purchased",
    "app.registered",
    "taxi_subsidy.registered",
    "taxi_subsidy.eligible_snapshot",
    "document.approved",
    "bpr.hours_saved",
    "telework.day",
    "staff.headcount_snapshot",
    "class.attended",
    "opendata.published",
    "opendata.withdrawn",
    "invoice_vendor.registered",
    "milestone.reached",
    "esports.event_held",
    "app.users_snapshot",
    "opendata.catalog_snapshot",
    "invoice_vendor.snapshot",
    "taxi_subsidy.registered_snapshot",
    "event.voided",
    "security.review_completed",
];

fn ome() -> Plan {
    match Plan::ome() {
        Ok(plan) => plan,
        Err(e) => panic!("the shipped plan does not load:\n{e}"),
    }
}

fn measure_id(plan: &Plan, ix: MeasureId) -> &str {
    &plan.measures[ix].id
}

#[test]
fn the_shipped_plan_loads_with_its_header_and_chapters() {
    let plan = ome();
    assert_eq!(plan.id, "ome-smart-local-2026");
    assert_eq!(
        plan.name_ja,
        "デジタル推シン・オウメ — スマートローカル青梅アクションプラン2026-2028"
    );
    assert_eq!(plan.name_en, "Smart Local Ome Action Plan 2026–2028");
    assert_eq!(plan.city, "青梅市");
    assert_eq!(plan.baseline_year, FiscalYear(2025));
    assert_eq!(plan.first_year, FiscalYear(2026));
    assert_eq!(plan.last_year, FiscalYear(2028));
    let chapters: Vec<(&str, &str)> = plan
        .chapters
        .iter()
        .map(|c| (c.id.as_str(), c.name_ja.as_str()))
        .collect();
    assert_eq!(
        chapters,
        [
            ("1", "行政サービスを変える"),
            ("2", "市役所を変える"),
            ("3", "地域社会を変える")
        ]
    );
    assert!(plan.chapters.iter().all(|c| !c.name_en.is_empty()));
}

#[test]
fn every_kpi_of_the_plan_is_there_in_chapter_order_and_nothing_else() {
    let plan = ome();
    let ids: Vec<&str> = plan.kpis.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, CHAPTER_ORDER);
    assert_eq!(NUMERIC.len() + MILESTONES.len(), CHAPTER_ORDER.len());
    for k in &plan.kpis {
        assert!(!k.name_ja.is_empty(), "{}: name_ja", k.id);
        assert!(!k.name_en.is_empty(), "{}: name_en", k.id);
        assert!(!k.source.is_empty(), "{}: source", k.id);
        assert!(!k.note.is_empty(), "{}: note", k.id);
    }
}

#[test]
fn numeric_kpis_have_the_plans_baselines_and_targets() {
    let plan = ome();
    for want in NUMERIC {
        let k = plan
            .kpi(want.id)
            .unwrap_or_else(|| panic!("{} is missing", want.id));
        assert_eq!(k.chapter, want.chapter, "{}: chapter", want.id);
        assert_eq!(k.unit, want.unit, "{}: unit", want.id);
        assert_eq!(k.direction, want.direction, "{}: direction", want.id);
        assert_eq!(k.baseline, want.baseline, "{}: baseline", want.id);
        let targets: Vec<Option<f64>> = YEARS.iter().map(|y| k.target(*y)).collect();
        assert_eq!(targets, want.targets, "{}: targets FY2026–28", want.id);
        assert_eq!(
            k.targets.keys().copied().collect::<Vec<_>>(),
            YEARS,
            "{}: one entry per plan year",
            want.id
        );
        match (&k.kind, &want.made) {
            (
                KpiKind::Ratio {
                    numerator,
                    denominator,
                    scale,
                },
                Made::Ratio(n, d),
            ) => {
                assert_eq!(measure_id(&plan, *numerator), *n, "{}: numerator", want.id);
                assert_eq!(
                    measure_id(&plan, *denominator),
                    *d,
                    "{}: denominator",
                    want.id
                );
                assert_eq!(*scale, 100.0, "{}: a percentage is ×100", want.id);
            }
            (KpiKind::Measure(m), Made::Measure(w))
            | (KpiKind::Recurring(m), Made::Recurring(w)) => {
                assert_eq!(measure_id(&plan, *m), *w, "{}: measure", want.id);
            }
            (got, made) => panic!("{}: kind {got:?}, expected {made:?}", want.id),
        }
    }
}

#[test]
fn tolerances_are_in_each_kpis_unit() {
    let plan = ome();
    for k in &plan.kpis {
        match &k.kind {
            KpiKind::Milestone { .. } => assert_eq!(k.tolerance, 0.0, "{}", k.id),
            KpiKind::Recurring(_) => assert_eq!(k.tolerance, 0.5, "{}", k.id),
            _ if k.is_percent() => assert_eq!(k.tolerance, 0.5, "{}", k.id),
            _ => {
                // About 2% of the first numeric target, at least one whole unit for
                // small counts; a KPI without any target has nothing to take 2% of.
                let Some(t) = k.targets.values().flatten().next() else {
                    continue;
                };
                assert!(
                    k.tolerance > 0.0 && k.tolerance <= (0.02 * t).max(1.0),
                    "{}: tolerance {} for a target of {t}",
                    k.id,
                    k.tolerance
                );
            }
        }
    }
}

#[test]
fn milestones_have_the_plans_stages_in_order() {
    let plan = ome();
    for want in MILESTONES {
        let k = plan
            .kpi(want.id)
            .unwrap_or_else(|| panic!("{} is missing", want.id));
        assert_eq!(k.chapter, want.chapter, "{}: chapter", want.id);
        assert_eq!(k.direction, Direction::Up, "{}: direction", want.id);
        let stages = k
            .stages()
            .unwrap_or_else(|| panic!("{} is not a milestone", want.id));
        let ids: Vec<&str> = stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, want.stages, "{}: stages", want.id);
        assert!(
            stages
                .iter()
                .all(|s| !s.name_ja.is_empty() && !s.name_en.is_empty()),
            "{}: every stage is named in Japanese and English",
            want.id
        );
        let index =
            |s: Option<&str>| s.map(|s| want.stages.iter().position(|x| *x == s).unwrap() as f64);
        assert_eq!(k.baseline, index(want.baseline), "{}: baseline", want.id);
        let targets: Vec<Option<f64>> = YEARS.iter().map(|y| k.target(*y)).collect();
        let expected: Vec<Option<f64>> = want.targets.iter().map(|t| index(*t)).collect();
        assert_eq!(targets, expected, "{}: target stages FY2026–28", want.id);
        // The same stages are what ingest checks milestone.reached against.
        assert_eq!(
            plan.schema.stages(want.id).unwrap(),
            want.stages,
            "{}: schema stages",
            want.id
        );
    }
}

#[test]
fn the_japanese_names_are_the_plans() {
    let plan = ome();
    let name = |id: &str| plan.kpi(id).unwrap().name_ja.clone();
    assert_eq!(
        name("mynumber_card_holding_rate"),
        "マイナンバーカード保有率"
    );
    assert_eq!(name("konbini_issuance_rate"), "コンビニ交付利用率");
    assert_eq!(name("online_procedure_coverage"), "オンライン化実施率");
    assert_eq!(
        name("online_procedure_usage_rate"),
        "オンライン手続き利用率"
    );
    assert_eq!(name("a4_paper_sheets_purchased"), "A4コピー用紙購入枚数");
    assert_eq!(name("telework_rate"), "テレワーク実施率");
    assert_eq!(name("umepon_registrations"), "うめPON登録者数");
}

#[test]
fn every_catalogue_event_type_is_declared() {
    let plan = ome();
    for name in CATALOGUE {
        assert!(
            plan.schema.type_id(name).is_some(),
            "{name} is not declared"
        );
    }
    assert_eq!(plan.schema.types().len(), CATALOGUE.len());
}

#[test]
fn every_measure_is_fed_and_every_level_has_a_snapshot() {
    let plan = ome();
    for (ix, m) in plan.measures.iter().enumerate() {
        let types = plan.types_feeding(MeasureId(ix));
        assert!(!types.is_empty(), "{} is fed by no event type", m.id);
        if !m.kind.is_flow() {
            assert!(
                types.iter().any(|t| plan.is_snapshot[usize::from(t.0)]),
                "{}: a level needs a snapshot",
                m.id
            );
        }
    }
    let bpr = plan.measure("bpr_hours").unwrap();
    assert_eq!(plan.measures[bpr].scale, 2, "BPR hours are kept to 0.01 h");
}

#[test]
fn field_declarations_follow_the_decisions() {
    let plan = ome();
    let field = |ty: &str, name: &str| {
        let t = plan.schema.event_type(plan.schema.type_id(ty).unwrap());
        t.fields[t.field(name).unwrap()].clone()
    };
    // Counts default to 1 only where the catalogue says so.
    assert!(!field("certificate.issued", "count").required);
    assert!(!field("security.review_completed", "count").required);
    assert!(field("application.submitted", "count").required);
    assert!(field("mynumber_card.issued", "count").required);
    assert!(!field("mynumber_card.issued", "kind").required);
    assert!(!field("document.approved", "origin").required);
    assert!(matches!(
        field("bpr.hours_saved", "hours").kind,
        FieldKind::Decimal {
            scale: 2,
            min: 1,
            ..
        }
    ));
    assert!(matches!(
        field("population.snapshot", "population").kind,
        FieldKind::Int { min: 1, .. }
    ));
    assert!(matches!(
        field("mynumber_card.holders_snapshot", "holders").kind,
        FieldKind::Int { min: 0, .. }
    ));
    assert!(matches!(
        field("milestone.reached", "stage").kind,
        FieldKind::Stage { .. }
    ));
    let voided = plan
        .schema
        .event_type(plan.schema.type_id("event.voided").unwrap());
    assert!(voided.voids && voided.fields.is_empty());
    let catalog = plan
        .schema
        .event_type(plan.schema.type_id("procedure.catalog_snapshot").unwrap());
    assert_eq!(catalog.rules.len(), 1);
}

#[test]
fn ingest_checks_events_against_the_plan() {
    let plan = ome();
    let event = |ty: &str, data: &str| {
        format!(
            r#"{{"event_id":"e1","source":"s","type":"{ty}","occurred_at":"2026-05-01T10:00:00+09:00","data":{data}}}"#
        )
    };
    let ok = |ty: &str, data: &str| {
        decode(&plan.schema, event(ty, data).as_bytes())
            .unwrap_or_else(|r| panic!("{ty} {data}: {r}"))
    };
    let reason = |ty: &str, data: &str| {
        decode(&plan.schema, event(ty, data).as_bytes())
            .unwrap_err()
            .reason
    };
    ok(
        "certificate.issued",
        r#"{"channel":"konbini","certificate":"juminhyo"}"#,
    );
    ok("mynumber_card.issued", r#"{"count":3}"#);
    ok(
        "bpr.hours_saved",
        r#"{"hours":1.25,"initiative":"rpa-payroll"}"#,
    );
    ok(
        "milestone.reached",
        r#"{"kpi":"invoice_online","stage":"system_build"}"#,
    );
    ok(
        "procedure.catalog_snapshot",
        r#"{"in_scope":200,"online":180}"#,
    );
    assert_eq!(
        reason(
            "milestone.reached",
            r#"{"kpi":"invoice_online","stage":"research"}"#
        ),
        Reason::UnknownValue
    );
    assert_eq!(
        reason(
            "procedure.catalog_snapshot",
            r#"{"in_scope":200,"online":201}"#
        ),
        Reason::CrossField
    );
    assert_eq!(
        reason("bpr.hours_saved", r#"{"hours":0,"initiative":"x"}"#),
        Reason::OutOfBounds
    );
    assert_eq!(
        reason(
            "application.submitted",
            r#"{"procedure":"p","channel":"online"}"#
        ),
        Reason::MissingField
    );
}

// ---------------------------------------------------------------------------------------
// Broken copies of the plan.

/// The 1-based line of the only occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    assert_eq!(text.matches(needle).count(), 1, "{needle:?} is not unique");
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not in the plan"));
    text[..at].matches('\n').count() + 1
}

/// `text` with the only occurrence of `from` replaced by `to`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} is not unique");
    text.replacen(from, to, 1)
}

fn errors_of(text: &str) -> Vec<PlanError> {
    match Plan::parse("broken.toml", text) {
        Ok(_) => panic!("the broken plan loaded"),
        Err(e) => {
            assert_eq!(e.file, "broken.toml");
            e.errors
        }
    }
}

fn kpi_index(id: &str) -> usize {
    CHAPTER_ORDER
        .iter()
        .position(|k| *k == id)
        .unwrap_or_else(|| panic!("{id} is not a KPI of the plan"))
}

#[test]
fn a_duplicate_kpi_id_names_the_second_id() {
    let from = r#"id = "konbini_issuance_rate""#;
    let text = replace_once(OME_PLAN, from, r#"id = "mynumber_card_holding_rate""#);
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, Some(line_of(OME_PLAN, from)));
    assert_eq!(
        errors[0].key,
        format!(
            "kpi[{}] (mynumber_card_holding_rate).id",
            kpi_index("konbini_issuance_rate")
        )
    );
    assert!(errors[0].message.contains("duplicate"), "{}", errors[0]);
}

#[test]
fn a_ratio_over_an_undeclared_measure_names_the_numerator() {
    let from = r#"numerator = "taxi_card_registrations""#;
    let text = replace_once(OME_PLAN, from, r#"numerator = "taxi_registrations""#);
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, Some(line_of(OME_PLAN, from)));
    assert_eq!(
        errors[0].key,
        format!(
            "kpi[{}] (taxi_subsidy_card_registration_rate).numerator",
            kpi_index("taxi_subsidy_card_registration_rate")
        )
    );
    assert!(
        errors[0].message.contains("taxi_registrations"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_milestone_target_that_is_not_a_stage_names_the_year() {
    let from = r#"2027 = "pilot_and_launch""#;
    let text = replace_once(OME_PLAN, from, r#"2027 = "pilot""#);
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, Some(line_of(OME_PLAN, from)));
    assert_eq!(
        errors[0].key,
        format!(
            "kpi[{}] (disposition_notice_online).targets.2027",
            kpi_index("disposition_notice_online")
        )
    );
    assert!(errors[0].message.contains("research"), "{}", errors[0]);
}

#[test]
fn a_target_outside_the_plans_years_names_the_year() {
    let from = "targets = { 2026 = 10000, 2027 = 10000, 2028 = 10000 }";
    let to = "targets = { 2026 = 10000, 2027 = 10000, 2028 = 10000, 2031 = 12000 }";
    let text = replace_once(OME_PLAN, from, to);
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, Some(line_of(OME_PLAN, from)));
    assert_eq!(
        errors[0].key,
        format!(
            "kpi[{}] (bpr_hours_saved).targets.2031",
            kpi_index("bpr_hours_saved")
        )
    );
}

#[test]
fn every_problem_is_reported_at_once_in_line_order() {
    let late = r#"measure = "umepon_users""#;
    let early = r#"denominator = "population""#;
    let text = replace_once(OME_PLAN, late, r#"measure = "umepon""#);
    let text = replace_once(&text, early, r#"denominator = "residents""#);
    let errors = errors_of(&text);
    let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        [
            Some(line_of(OME_PLAN, early)),
            Some(line_of(OME_PLAN, late))
        ]
    );
    assert!(errors[0].key.ends_with(".denominator"), "{}", errors[0]);
    assert!(errors[1].key.ends_with(".measure"), "{}", errors[1]);
}

// ---------------------------------------------------------------------------------------
// The format's documentation.

/// The shipped plan carries no dated target revisions: its targets are the plan's own.
#[test]
fn the_ome_plan_has_no_target_revisions() {
    let plan = Plan::ome().unwrap();
    assert!(plan.kpis.iter().all(|k| k.revisions.is_empty()));
}

/// The example plan of `docs/plan-format.md` ("A complete example") loads as it stands.
#[test]
fn the_documented_example_plan_loads() {
    let doc = include_str!("../../docs/plan-format.md");
    let section = &doc[doc.find("## A complete example").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let plan = match Plan::parse("docs/plan-format.md", example) {
        Ok(plan) => plan,
        Err(e) => panic!("the documented example does not load:\n{e}"),
    };
    let kinds: Vec<&str> = plan
        .kpis
        .iter()
        .map(|k| match &k.kind {
            KpiKind::Measure(m) if plan.measures[*m].kind.is_flow() => "flow",
            KpiKind::Ratio { numerator, .. } if !plan.measures[*numerator].kind.is_flow() => {
                "ratio of levels"
            }
            KpiKind::Milestone { .. } => "milestone",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["flow", "ratio of levels", "milestone"]);
    let rate = plan.kpi("mynumber_card_holding_rate").unwrap();
    assert_eq!(rate.alert.behind_for, "14d");
    assert_eq!(rate.revisions.len(), 1, "the documented revision");
    let revised = &rate.revisions[0];
    assert_eq!((revised.year, revised.target), (FiscalYear(2027), 86.5));
    assert_eq!(
        rate.target(FiscalYear(2027)),
        Some(85.8),
        "the original stays"
    );
    assert_eq!(
        rate.target_at(FiscalYear(2027), FiscalYear(2028).start()),
        Some(86.5)
    );
    let milestone = plan.kpi("disposition_notice_online").unwrap();
    assert_eq!(milestone.due.get(&FiscalYear(2026)).unwrap(), "2027-03-31");
    assert_eq!(milestone.target(FiscalYear(2028)), Some(2.0));
    assert_eq!(
        plan.kpi("app_new_registrations")
            .unwrap()
            .target(FiscalYear(2028)),
        None
    );
}
