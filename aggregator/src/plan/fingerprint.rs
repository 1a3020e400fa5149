//! What each measure means, as a stable fingerprint: the store records it, and a plan
//! whose measures mean something else than the stored aggregates were folded with is
//! refused until `mieruka replay --apply` rebuilds them.
//!
//! A measure's fingerprint covers what decides its numbers: its kind and scale, and for
//! every event type that feeds it the operation, the summed field and the filters (with
//! the fields' kinds and defaults), all by name so reordering the plan file changes
//! nothing. A milestone KPI's stages are stored by position, so its stage list is
//! fingerprinted too (key `k:<id>`). Names, descriptions, targets and alert settings are
//! not, nor are dated target revisions: changing them needs no rebuild.

use std::collections::BTreeMap;
use std::fmt;

use mieruka_ingest::schema::{EventType, FieldIx};

use super::model::{KpiKind, Plan, Route};

/// The fingerprint of every measure (`m:<id>`) and milestone KPI (`k:<id>`) of a plan.
pub type Fingerprints = BTreeMap<String, String>;

/// FNV-1a, 64 bits: stable across builds and platforms (unlike `std`'s hashers).
fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A field as its definition reads: name, kind (bounds, scale, values), default.
fn field(ty: &EventType, ix: FieldIx) -> String {
    ty.fields.get(ix).map_or_else(String::new, |f| {
        format!("{}:{:?}:{:?}", f.name, f.kind, f.default)
    })
}

/// One route into a measure, by names.
fn route(ty: &EventType, r: &Route) -> String {
    let mut filters: Vec<String> = r
        .filter
        .iter()
        .map(|(ix, allowed)| {
            let values = match ty.fields.get(*ix).map(|f| &f.kind) {
                Some(mieruka_ingest::schema::FieldKind::Enum { values }) => {
                    let mut names: Vec<&str> = allowed
                        .iter()
                        .filter_map(|v| values.get(usize::from(*v)).map(String::as_str))
                        .collect();
                    names.sort_unstable();
                    names.join("|")
                }
                _ => format!("{allowed:?}"),
            };
            format!("{}={values}", field(ty, *ix))
        })
        .collect();
    filters.sort();
    format!(
        "type={};op={:?};field={};filter=[{}]",
        ty.name,
        r.op,
        r.field.map_or_else(String::new, |ix| field(ty, ix)),
        filters.join(",")
    )
}

/// Every measure's and milestone KPI's fingerprint.
pub fn fingerprints(plan: &Plan) -> Fingerprints {
    let mut out = Fingerprints::new();
    for (m, measure) in plan.measures.iter().enumerate() {
        let mut routes: Vec<String> = plan
            .schema
            .types()
            .iter()
            .zip(&plan.routes)
            .flat_map(|(ty, rs)| {
                rs.iter()
                    .filter(|r| r.measure.0 == m)
                    .map(move |r| route(ty, r))
            })
            .collect();
        routes.sort();
        let text = format!(
            "kind={:?};scale={};routes=[{}]",
            measure.kind,
            measure.scale,
            routes.join(";")
        );
        out.insert(format!("m:{}", measure.id), fnv(&text));
    }
    for kpi in &plan.kpis {
        if let KpiKind::Milestone { stages } = &kpi.kind {
            let ids: Vec<&str> = stages.iter().map(|s| s.id.as_str()).collect();
            out.insert(format!("k:{}", kpi.id), fnv(&ids.join("|")));
        }
    }
    out
}

/// One fingerprint for the whole set: what a batch checks in its transaction.
pub fn plan_fingerprint(prints: &Fingerprints) -> String {
    let text: Vec<String> = prints.iter().map(|(k, v)| format!("{k}={v}")).collect();
    fnv(&text.join("\n"))
}

/// How the plan's measures differ from those the store's aggregates were folded with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanDrift {
    /// In the plan, not in the store.
    pub added: Vec<String>,
    /// In the store, not in the plan.
    pub removed: Vec<String>,
    /// In both, meaning something else.
    pub changed: Vec<String>,
}

impl PlanDrift {
    /// The difference from `stored` to `current`; `None` when they mean the same.
    pub fn between(stored: &Fingerprints, current: &Fingerprints) -> Option<PlanDrift> {
        let mut drift = PlanDrift::default();
        for (k, v) in current {
            match stored.get(k) {
                None => drift.added.push(k.clone()),
                Some(s) if s != v => drift.changed.push(k.clone()),
                Some(_) => {}
            }
        }
        drift.removed = stored
            .keys()
            .filter(|k| !current.contains_key(*k))
            .cloned()
            .collect();
        (drift != PlanDrift::default()).then_some(drift)
    }
}

/// `m:x` → `measure x`, `k:y` → `milestone KPI y`.
fn shown(key: &str) -> String {
    match (key.strip_prefix("m:"), key.strip_prefix("k:")) {
        (Some(m), _) => format!("measure {m}"),
        (_, Some(k)) => format!("milestone KPI {k}"),
        _ => key.to_owned(),
    }
}

impl fmt::Display for PlanDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the plan's measures differ from those the store's aggregates were folded with ("
        )?;
        let mut parts = Vec::new();
        for (what, keys) in [
            ("changed", &self.changed),
            ("added", &self.added),
            ("removed", &self.removed),
        ] {
            if !keys.is_empty() {
                let names: Vec<String> = keys.iter().map(|k| shown(k)).collect();
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        }
        write!(
            f,
            "{}); stop every aggregator, rebuild the aggregates with `mieruka replay --apply` \
             under the new plan, then start the roles with it (a change of names, targets or \
             alert settings alone needs no rebuild)",
            parts.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ome_with(from: &str, to: &str) -> Plan {
        let text = crate::plan::OME_PLAN.replacen(from, to, 1);
        assert_ne!(text, crate::plan::OME_PLAN, "{from:?} is not in the plan");
        Plan::parse("edited.toml", &text).unwrap()
    }

    #[test]
    fn the_same_plan_has_the_same_fingerprints() {
        let a = fingerprints(&Plan::ome().unwrap());
        let b = fingerprints(&Plan::ome().unwrap());
        assert_eq!(a, b);
        assert_eq!(plan_fingerprint(&a), plan_fingerprint(&b));
        assert!(PlanDrift::between(&a, &b).is_none());
    }

    #[test]
    fn a_filter_change_names_the_measure_and_targets_do_not_count() {
        let ome = fingerprints(&Plan::ome().unwrap());
        let edited = fingerprints(&ome_with(
            "where = { channel = \"konbini\" }",
            "where = { channel = \"counter\" }",
        ));
        let drift = PlanDrift::between(&ome, &edited).unwrap();
        assert_eq!(drift.changed, vec!["m:certificates_konbini".to_owned()]);
        assert!(drift.added.is_empty() && drift.removed.is_empty());
        let text = drift.to_string();
        assert!(
            text.contains("changed: measure certificates_konbini"),
            "{text}"
        );
        assert!(text.contains("mieruka replay --apply"), "{text}");

        let retargeted = fingerprints(&ome_with(
            "targets = { 2026 = 84.6",
            "targets = { 2026 = 90.0",
        ));
        assert_eq!(PlanDrift::between(&ome, &retargeted), None);
        let described = fingerprints(&ome_with(
            "description = \"Resident population (住民基本台帳).\"",
            "description = \"Residents.\"",
        ));
        assert_eq!(PlanDrift::between(&ome, &described), None);
    }

    #[test]
    fn a_dated_target_revision_needs_no_rebuild() {
        let ome = fingerprints(&Plan::ome().unwrap());
        // A revision table belongs to the [[kpi]] above it: it goes right before the
        // next KPI.
        let next = "[[kpi]]\nid = \"konbini_issuance_rate\"";
        let revised = ome_with(
            next,
            &format!(
                "[[kpi.revisions]]\nfiscal_year = 2027\ntarget = 88.0\nfrom = \"2027-06-15\"\n\
                 decision = \"令和9年第2回定例会で改定\"\n\n{next}"
            ),
        );
        let k = revised.kpi("mynumber_card_holding_rate").unwrap();
        assert_eq!(k.revisions.len(), 1, "the revision is in the plan");
        let prints = fingerprints(&revised);
        assert_eq!(PlanDrift::between(&ome, &prints), None);
        assert_eq!(plan_fingerprint(&ome), plan_fingerprint(&prints));
    }

    #[test]
    fn added_and_removed_measures_are_named() {
        let ome = fingerprints(&Plan::ome().unwrap());
        let mut fewer = ome.clone();
        fewer.remove("m:population");
        fewer.insert("m:gone".into(), "0".into());
        let drift = PlanDrift::between(&fewer, &ome).unwrap();
        assert_eq!(drift.added, vec!["m:population".to_owned()]);
        assert_eq!(drift.removed, vec!["m:gone".to_owned()]);
        assert!(drift.to_string().contains("added: measure population"));
    }
}
