//! The exporter's shared state: the last published snapshot (figures, and the KPI
//! exposition and status page rendered from them once), the health metrics, and the
//! readiness flag.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use mieruka_aggregator::{Figure, Plan};
use mieruka_ingest::Timestamp;

use crate::feeds::SourceDirectory;
use crate::health::{Health, Role};
use crate::kpi_explain::Explainer;
use crate::kpi_page::{render_kpi_page_with, PageExtras};
use crate::kpis::render_kpis;
use crate::status_page::{render_status_page, render_status_page_full};
use crate::trend::Trends;

/// One published snapshot, immutable once built: scrapes clone the `Arc` and read it
/// without holding the lock.
struct Snapshot {
    figures: Arc<Vec<Figure>>,
    /// The KPI part of `/metrics`, rendered at publish.
    kpi_text: String,
    /// The status page, rendered at publish.
    status_page: String,
    /// Each KPI's page by KPI id, rendered at publish (without the explanation).
    kpi_pages: BTreeMap<String, String>,
    /// The months the pages chart, kept to render a KPI's page again with its
    /// explanation.
    trends: Arc<Trends>,
    /// Which publish this is (explained pages are cached per publish).
    generation: u64,
    /// The `now` the figures were computed at (the engine's clock, possibly `--now`).
    now: Option<Timestamp>,
    /// When it was published, on this process's monotonic clock: the snapshot's age is
    /// measured on it, so a fixed `--now` or a wall-clock jump cannot make it negative.
    published: Option<Instant>,
}

/// The exporter's shared state: what `/metrics`, `/readyz` and the status page serve.
///
/// Shared behind an `Arc` by the HTTP handlers and the role that publishes snapshots.
pub struct Exporter {
    plan: Arc<Plan>,
    /// Which role serves: only the KPI roles render the KPI figures into `/metrics`.
    role: Role,
    health: Health,
    /// Set by the role once its inputs are open; `/readyz` also needs a snapshot.
    ready: AtomicBool,
    /// A std lock, because it is held only to clone or swap an `Arc` and nothing awaits
    /// while it is held.
    snapshot: RwLock<Arc<Snapshot>>,
    /// Counts publishes, for [`Snapshot::generation`].
    publishes: AtomicU64,
    /// The configured sources the pages name (display names, types, cadences).
    directory: RwLock<Arc<SourceDirectory>>,
    /// What explains a figure on its KPI's page (the roles that hold a store).
    explainer: OnceLock<Arc<dyn Explainer>>,
    /// KPI pages rendered with their explanation, by KPI id, with the publish they
    /// belong to: an explanation reads the KPI's events back, so it is computed once per
    /// publish, when first asked for. A std lock: nothing awaits while it is held.
    explained: Mutex<BTreeMap<String, (u64, Arc<String>)>>,
    /// Held while an explanation is computed: one store scan at a time, so a burst of
    /// requests after a publish waits for the first and then reads the cache instead of
    /// scanning the log once each. Tokio's, as it is held across the scan.
    explaining: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("plan", &self.plan.id)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .field("published_at", &self.published_at())
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// The standalone role's exporter for `plan`, labelling events by the configured
    /// `sources` (plus `unknown`).
    ///
    /// It starts not ready (see [`Exporter::set_ready`]) and with no snapshot.
    pub fn new(plan: Arc<Plan>, sources: Vec<String>) -> Arc<Self> {
        Self::for_role(plan, sources, Role::Standalone)
    }

    /// The exporter of `role`: its health series are those that apply to it, and the
    /// KPI figures are in its `/metrics` only if it serves them (a role that does not
    /// still publishes, for its readiness and its status page).
    pub fn for_role(plan: Arc<Plan>, sources: Vec<String>, role: Role) -> Arc<Self> {
        let empty = Snapshot {
            figures: Arc::new(Vec::new()),
            kpi_text: String::new(),
            status_page: render_status_page(&plan, &[], None),
            kpi_pages: BTreeMap::new(),
            trends: Arc::default(),
            generation: 0,
            now: None,
            published: None,
        };
        Arc::new(Self {
            health: Health::for_role(role, &sources),
            role,
            plan,
            ready: AtomicBool::new(false),
            snapshot: RwLock::new(Arc::new(empty)),
            publishes: AtomicU64::new(0),
            directory: RwLock::default(),
            explainer: OnceLock::new(),
            explained: Mutex::default(),
            explaining: tokio::sync::Mutex::new(()),
        })
    }

    /// Renders the KPI exposition and status page for `figures` once, and swaps them in.
    ///
    /// `now` is the instant the figures were computed at; the publish itself is timed on
    /// the monotonic clock for `mieruka_snapshot_age_seconds`.
    pub fn publish(&self, figures: &[Figure], now: Timestamp) {
        self.publish_with_trends(figures, &Trends::default(), now);
    }

    /// [`Exporter::publish`] with the months of the year (see [`crate::trend::trends`]),
    /// which the status page and each KPI's page chart.
    pub fn publish_with_trends(&self, figures: &[Figure], trends: &Trends, now: Timestamp) {
        let started = Instant::now();
        let plan = &self.plan;
        let directory = self.directory();
        let states = self.health.feed_states();
        let extras = PageExtras {
            directory: Some(&*directory),
            states: Some(&states),
            explanation: None,
        };
        let next = Snapshot {
            figures: Arc::new(figures.to_vec()),
            kpi_text: if self.role.serves_kpis() {
                render_kpis(plan, figures)
            } else {
                String::new()
            },
            status_page: render_status_page_full(
                plan,
                figures,
                trends,
                Some(now),
                (&self.health.inboxes(), Some((&*directory, &states))),
            ),
            kpi_pages: plan
                .kpis_with_ids()
                .map(|(k, kpi)| {
                    (
                        kpi.id.clone(),
                        render_kpi_page_with(plan, k, figures, trends, now, extras),
                    )
                })
                .collect(),
            trends: Arc::new(trends.clone()),
            generation: self.publishes.fetch_add(1, Ordering::Relaxed) + 1,
            now: Some(now),
            published: Some(Instant::now()),
        };
        let bytes = next.kpi_text.len();
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        tracing::debug!(
            figures = figures.len(),
            bytes,
            render_ms = started.elapsed().as_secs_f64() * 1e3,
            %now,
            "KPI snapshot published."
        );
    }

    fn current(&self) -> Arc<Snapshot> {
        // A panic elsewhere cannot leave a half-swapped `Arc` behind: the poisoned
        // value is still a whole snapshot, so it is served.
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The plan the exporter serves.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The pipeline's health metrics, for the roles to count into.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Declares the role ready (its inputs are open) or not (e.g. while shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// `Ok` when `/readyz` should answer 200, else the reason it answers 503.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("not ready: the role has not declared itself ready");
        }
        if self.current().published.is_none() {
            return Err("not ready: no KPI snapshot has been published yet");
        }
        Ok(())
    }

    /// The `now` of the snapshot being served, once one has been published.
    pub fn published_at(&self) -> Option<Timestamp> {
        self.current().now
    }

    /// What `GET /metrics` returns: the cached KPI text, then the health metrics.
    ///
    /// `mieruka_snapshot_age_seconds` is set here, from the last publish; nothing else is
    /// computed.
    pub fn render_metrics(&self) -> String {
        let snapshot = self.current();
        if let Some(published) = snapshot.published {
            self.health
                .set_snapshot_age(published.elapsed().as_secs_f64());
        }
        let mut out = String::with_capacity(snapshot.kpi_text.len() + 16 * 1024);
        out.push_str(&snapshot.kpi_text);
        self.health.encode_into(&mut out);
        out
    }

    /// The served snapshot's figures (empty before the first publish).
    pub fn figures(&self) -> Arc<Vec<Figure>> {
        Arc::clone(&self.current().figures)
    }

    /// What `GET /kpi/<id>` returns: the KPI's page rendered at the last publish;
    /// `None` for an id the plan does not have or before the first publish.
    pub fn kpi_page(&self, id: &str) -> Option<String> {
        self.current().kpi_pages.get(id).cloned()
    }

    /// Names the configured sources on the pages from the next publish on.
    pub fn set_source_directory(&self, directory: SourceDirectory) {
        *self
            .directory
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(directory);
    }

    /// The configured sources the pages name.
    pub fn directory(&self) -> Arc<SourceDirectory> {
        Arc::clone(
            &self
                .directory
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Lets each KPI's page show the explanation of its figure (once; later calls are
    /// ignored).
    pub fn set_explainer(&self, explainer: Arc<dyn Explainer>) {
        let _ = self.explainer.set(explainer);
    }

    /// What `GET /kpi/<id>` returns where the role can explain: the KPI's page with the
    /// explanation of its figure at the served snapshot's instant, computed at the first
    /// request after each publish and kept until the next; without an explainer, the
    /// page rendered at publish. `None` for an id the plan does not have or before the
    /// first publish.
    pub async fn kpi_page_explained(&self, id: &str) -> Option<String> {
        let snapshot = self.current();
        let (Some(now), Some(explainer)) = (snapshot.now, self.explainer.get()) else {
            return snapshot.kpi_pages.get(id).cloned();
        };
        let k = self.plan.kpi_id(id)?;
        if let Some(page) = self.explained_page(id, snapshot.generation) {
            return Some(page);
        }
        let _one_at_a_time = self.explaining.lock().await;
        if let Some(page) = self.explained_page(id, snapshot.generation) {
            return Some(page);
        }
        let explanation = explainer.explain(id, now).await;
        if let Err(error) = &explanation {
            tracing::warn!(kpi = id, %error, "A KPI's explanation could not be computed.");
        }
        let directory = self.directory();
        let states = self.health.feed_states();
        let extras = PageExtras {
            directory: Some(&*directory),
            states: Some(&states),
            explanation: Some(explanation.as_ref().map_err(String::as_str)),
        };
        let page = render_kpi_page_with(
            &self.plan,
            k,
            &snapshot.figures,
            &snapshot.trends,
            now,
            extras,
        );
        if explanation.is_ok() {
            self.explained
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.to_owned(), (snapshot.generation, Arc::new(page.clone())));
        }
        Some(page)
    }

    /// The page of KPI `id` with its explanation, if rendered for publish `generation`.
    fn explained_page(&self, id: &str, generation: u64) -> Option<String> {
        self.explained
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .filter(|(g, _)| *g == generation)
            .map(|(_, page)| page.as_str().to_owned())
    }

    /// What `GET /` returns: the status page rendered at the last publish.
    pub fn status_page(&self) -> String {
        self.current().status_page.clone()
    }
}
