//! `mieruka demo`: a deterministic synthetic history of the Ome plan.
//!
//! The history pretends to be Ome City (about 130,000 residents, about 1,400 staff)
//! from 2025-04-01 00:00 JST up to `now`: every line system of [`demo_sources`] sends
//! the events of the plan's catalogue, with volumes and trends chosen so that the
//! dashboards tell a plausible story — some KPIs on pace for their FY2026 target
//! (card holding rate, online-procedure coverage, うめっこ, BPR hours, open data,
//! senior classes), others behind it (コンビニ交付, online usage, taxi subsidy,
//! telework, うめPON).
//!
//! What it is built on:
//! - One tiny PRNG (splitmix64) per feed, seeded from the seed and the feed's name, so
//!   one feed's draws never shift another's. Every feed draws day by day from the
//!   start and never looks at `now`, so a later `now` extends the same history: the
//!   output for an earlier `now` is the output for a later one cut at that instant.
//! - Every level has its first snapshot at 2025-04-01T00:00+09:00 (figures "as of the
//!   1st" of each month, the way the resident registry reports), so levels have a
//!   start; deltas move them between snapshots, and a registry snapshot corrects what
//!   no event reports (cards of people who moved in, accounts deleted in an app).
//! - Event ids are `{source}-{yyyymmdd}-{nnnnnn}`, numbered per source and JST day in
//!   time order: never a 12-digit number. Staff ids are opaque hashes (`st-3f9a1c07d2`).
//! - A handful of certificate events are retracted by `event.voided` minutes later, and
//!   a handful of events are delivered twice (exact duplicates, one line after the
//!   other), to show void and duplicate handling.
//! - Event types the plan does not declare, and milestone stages it does not know, are
//!   left out, so the generator follows the plan it is given.

use std::collections::HashMap;

use mieruka_aggregator::plan::Plan;
use mieruka_ingest::timestamp::{civil_from_days, days_from_civil};
use mieruka_ingest::Timestamp;

/// Options of the synthetic history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// The history ends here (inclusive): no event occurs after it.
    pub now: Timestamp,
    /// Same (now, seed), same history.
    pub seed: u64,
}

/// The line systems the demo pretends to be, as (source, event types it sends): used to
/// configure tokens / source labels.
pub fn demo_sources() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("konbini", vec!["certificate.issued", "event.voided"]),
        (
            "madoguchi",
            vec![
                "certificate.issued",
                "application.submitted",
                "event.voided",
            ],
        ),
        (
            "card",
            vec![
                "mynumber_card.issued",
                "mynumber_card.surrendered",
                "mynumber_card.holders_snapshot",
            ],
        ),
        ("juki", vec!["population.snapshot"]),
        (
            "portal",
            vec!["application.submitted", "procedure.catalog_snapshot"],
        ),
        ("procurement", vec!["paper.purchased"]),
        ("docmgmt", vec!["document.approved"]),
        ("hr", vec!["telework.day", "staff.headcount_snapshot"]),
        (
            "welfare",
            vec![
                "taxi_subsidy.registered",
                "taxi_subsidy.eligible_snapshot",
                "taxi_subsidy.registered_snapshot",
            ],
        ),
        ("apps", vec!["app.registered", "app.users_snapshot"]),
        (
            "opendata",
            vec![
                "opendata.published",
                "opendata.withdrawn",
                "opendata.catalog_snapshot",
            ],
        ),
        (
            "accounting",
            vec![
                "invoice_vendor.registered",
                "invoice_vendor.snapshot",
                "milestone.reached",
            ],
        ),
        (
            "dx_office",
            vec![
                "bpr.hours_saved",
                "class.attended",
                "milestone.reached",
                "esports.event_held",
                "security.review_completed",
            ],
        ),
    ]
}

/// Generates the history from 2025-04-01T00:00+09:00 up to `now`, as raw NDJSON events
/// (one JSON object per String) in `occurred_at` order. Deterministic for a (now, seed).
pub fn generate(plan: &Plan, opts: &DemoOptions) -> Vec<String> {
    let now = opts.now.unix_seconds() + JST;
    let mut h = History {
        plan,
        now,
        events: Vec::with_capacity(400_000),
        cal: Calendar::new(),
    };
    if now < local(start_day(), 0) {
        return Vec::new();
    }
    let now_day = now.div_euclid(DAY) as i32;
    // Feeds that calibrate a fiscal year's total simulate whole years; feeds that only
    // look back stop at today.
    let sim_end = day(fy_of(now_day) + 1, 3, 31).max(day(2026, 3, 31));
    let seed = opts.seed;
    population_and_cards(&mut h, seed, now_day);
    certificates(&mut h, seed, now_day);
    applications(&mut h, seed, now_day);
    catalogue(&mut h, seed, now_day);
    paper(&mut h, seed, sim_end);
    apps(&mut h, seed, sim_end);
    taxi_subsidy(&mut h, seed, now_day);
    documents(&mut h, seed, now_day);
    bpr(&mut h, seed, sim_end);
    staff(&mut h, seed, sim_end);
    classes(&mut h, seed, sim_end);
    open_data(&mut h, seed, sim_end);
    accounting(&mut h, seed, sim_end);
    dx_office(&mut h, seed, sim_end);
    h.finish()
}

// ---------------------------------------------------------------------------------------
// Time: "local" instants are seconds since 1970-01-01 00:00 on the JST wall clock.

const JST: i64 = 9 * 3600;
const DAY: i64 = 86_400;

fn day(y: i32, m: u32, d: u32) -> i32 {
    days_from_civil(y, m, d) as i32
}

fn civil(d: i32) -> (i32, u32, u32) {
    civil_from_days(i64::from(d))
}

fn start_day() -> i32 {
    day(2025, 4, 1)
}

fn local(d: i32, second_of_day: i64) -> i64 {
    i64::from(d) * DAY + second_of_day
}

const fn hms(h: i64, m: i64, s: i64) -> i64 {
    h * 3600 + m * 60 + s
}

/// 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday).
fn weekday(d: i32) -> i32 {
    (d + 4).rem_euclid(7)
}

/// The fiscal year a day belongs to.
fn fy_of(d: i32) -> i32 {
    let (y, m, _) = civil(d);
    if m >= 4 {
        y
    } else {
        y - 1
    }
}

/// Years elapsed since 2025-04-01 (the trends' clock).
fn years(d: i32) -> f64 {
    f64::from(d - start_day()) / 365.25
}

/// Month `k` of the history (0 = April 2025) as (year, month).
fn month_of(k: usize) -> (i32, u32) {
    let t = 3 + k as i32;
    (2025 + t / 12, (t % 12) as u32 + 1)
}

fn month_start(k: usize) -> i32 {
    let (y, m) = month_of(k);
    day(y, m, 1)
}

/// The months whose first day is at or before `last`.
fn months_through(last: i32) -> usize {
    let mut k = 0;
    while month_start(k) <= last {
        k += 1;
    }
    k
}

fn format_local(t: i64, out: &mut String) {
    use std::fmt::Write;
    let (y, m, d) = civil(t.div_euclid(DAY) as i32);
    let s = t.rem_euclid(DAY);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+09:00",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
}

/// Japan's national holidays (and substitute holidays), April 2025 to the end of 2027;
/// later years have weekends and the year-end break only.
const HOLIDAYS: &[(i32, u32, u32)] = &[
    (2025, 4, 29),
    (2025, 5, 3),
    (2025, 5, 4),
    (2025, 5, 5),
    (2025, 5, 6),
    (2025, 7, 21),
    (2025, 8, 11),
    (2025, 9, 15),
    (2025, 9, 23),
    (2025, 10, 13),
    (2025, 11, 3),
    (2025, 11, 23),
    (2025, 11, 24),
    (2026, 1, 1),
    (2026, 1, 12),
    (2026, 2, 11),
    (2026, 2, 23),
    (2026, 3, 20),
    (2026, 4, 29),
    (2026, 5, 3),
    (2026, 5, 4),
    (2026, 5, 5),
    (2026, 5, 6),
    (2026, 7, 20),
    (2026, 8, 11),
    (2026, 9, 21),
    (2026, 9, 22),
    (2026, 9, 23),
    (2026, 10, 12),
    (2026, 11, 3),
    (2026, 11, 23),
    (2027, 1, 1),
    (2027, 1, 11),
    (2027, 2, 11),
    (2027, 2, 23),
    (2027, 3, 22),
    (2027, 4, 29),
    (2027, 5, 3),
    (2027, 5, 4),
    (2027, 5, 5),
    (2027, 7, 19),
    (2027, 8, 11),
    (2027, 9, 20),
    (2027, 9, 23),
    (2027, 10, 11),
    (2027, 11, 3),
    (2027, 11, 23),
];

struct Calendar {
    holidays: Vec<i32>,
}

impl Calendar {
    fn new() -> Self {
        let mut holidays: Vec<i32> = HOLIDAYS.iter().map(|&(y, m, d)| day(y, m, d)).collect();
        holidays.sort_unstable();
        Self { holidays }
    }

    /// 12/29–1/3: city hall and the convenience-store service are closed.
    fn year_end(d: i32) -> bool {
        let (_, m, dd) = civil(d);
        (m == 12 && dd >= 29) || (m == 1 && dd <= 3)
    }

    /// City hall counters are open (weekdays, not holidays, not the year-end break).
    fn business(&self, d: i32) -> bool {
        (1..=5).contains(&weekday(d))
            && self.holidays.binary_search(&d).is_err()
            && !Self::year_end(d)
    }

    /// The convenience-store certificate service runs every day but the year-end break.
    fn konbini(d: i32) -> bool {
        !Self::year_end(d)
    }

    fn business_days(&self, from: i32, to: i32) -> Vec<i32> {
        (from..=to).filter(|d| self.business(*d)).collect()
    }

    fn business_days_of_month(&self, y: i32, m: u32) -> Vec<i32> {
        let first = day(y, m, 1);
        let next = if m == 12 {
            day(y + 1, 1, 1)
        } else {
            day(y, m + 1, 1)
        };
        self.business_days(first, next - 1)
    }
}

// ---------------------------------------------------------------------------------------
// Randomness: splitmix64, one stream per feed.

#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in stream.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ h);
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); 0 when n is 0.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [lo, hi].
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(0) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            0
        } else if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0;
            let mut p = self.unit();
            while p > limit {
                k += 1;
                p *= self.unit();
            }
            k
        } else {
            (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64
        }
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let total: f64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.unit() * total;
        for &(item, w) in items {
            if x < w {
                return item;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }

    fn pick(&mut self, days: &[i32]) -> Option<i32> {
        (!days.is_empty()).then(|| days[self.below(days.len() as u64) as usize])
    }

    /// Seconds of the day, uniform in [from, to).
    fn time(&mut self, from: i64, to: i64) -> i64 {
        from + self.below((to - from) as u64) as i64
    }

    /// A counter's opening hours, 8:30–17:15.
    fn counter_time(&mut self) -> i64 {
        self.time(hms(8, 30, 0), hms(17, 15, 0))
    }

    /// Back-office work, 9:00–17:00.
    fn office_time(&mut self) -> i64 {
        self.time(hms(9, 0, 0), hms(17, 0, 0))
    }

    /// Convenience stores, 6:30–23:00, busiest in the day.
    fn konbini_time(&mut self) -> i64 {
        if self.chance(0.6) {
            self.time(hms(9, 0, 0), hms(20, 0, 0))
        } else {
            self.time(hms(6, 30, 0), hms(23, 0, 0))
        }
    }

    /// Online, any hour, mostly the day and the evening.
    fn online_time(&mut self) -> i64 {
        if self.chance(0.75) {
            self.time(hms(7, 0, 0), hms(23, 30, 0))
        } else {
            self.time(0, hms(23, 59, 0))
        }
    }
}

/// Counts that follow an expected rate closely (low variance): the fraction carries over.
#[derive(Default)]
struct Dither(f64);

impl Dither {
    fn take(&mut self, rng: &mut Rng, expected: f64) -> u64 {
        self.0 += expected.max(0.0) * (0.4 + 1.2 * rng.unit());
        let n = self.0.floor();
        self.0 -= n;
        n as u64
    }
}

/// Splits `total` into integer parts proportional to weights in [lo, hi], each ≥ `min`.
fn split(rng: &mut Rng, total: i64, parts: usize, (lo, hi): (f64, f64), min: i64) -> Vec<i64> {
    if parts == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = (0..parts).map(|_| lo + (hi - lo) * rng.unit()).collect();
    let sum: f64 = weights.iter().sum();
    let mut out: Vec<i64> = weights
        .iter()
        .map(|w| ((total as f64 * w / sum).floor() as i64).max(min))
        .collect();
    let rest = total - out.iter().sum::<i64>();
    let last = out.len() - 1;
    out[last] = (out[last] + rest).max(min);
    out
}

// ---------------------------------------------------------------------------------------
// The history being built.

struct Ev {
    at: i64,
    source: &'static str,
    kind: &'static str,
    data: String,
    /// The (index of the) event it retracts.
    voids: Option<usize>,
    /// Delivered twice.
    duplicate: bool,
}

struct History<'p> {
    plan: &'p Plan,
    now: i64,
    events: Vec<Ev>,
    cal: Calendar,
}

impl History<'_> {
    /// Records an event that occurred at `at` (local seconds), unless it lies outside the
    /// history or the plan does not declare its type.
    fn push(
        &mut self,
        at: i64,
        source: &'static str,
        kind: &'static str,
        data: String,
    ) -> Option<usize> {
        if at > self.now || at < local(start_day(), 0) || self.plan.schema.type_id(kind).is_none() {
            return None;
        }
        self.events.push(Ev {
            at,
            source,
            kind,
            data,
            voids: None,
            duplicate: false,
        });
        Some(self.events.len() - 1)
    }

    /// Records that `source` retracts the event at index `target`, at `at`.
    fn void(&mut self, at: i64, target: usize) {
        let source = self.events[target].source;
        if let Some(i) = self.push(at, source, "event.voided", "{}".to_owned()) {
            self.events[i].voids = Some(target);
        }
    }

    /// Whether a milestone KPI of the plan has this stage.
    fn has_stage(&self, kpi: &str, stage: &str) -> bool {
        self.plan
            .kpi(kpi)
            .and_then(|k| k.stages())
            .is_some_and(|s| s.iter().any(|st| st.id == stage))
    }

    fn milestone(&mut self, at: i64, source: &'static str, kpi: &str, stage: &str) {
        if self.has_stage(kpi, stage) {
            let data = format!("{{\"kpi\":\"{kpi}\",\"stage\":\"{stage}\"}}");
            self.push(at, source, "milestone.reached", data);
        }
    }

    /// Sorts by time, numbers ids per source and day, and renders the lines.
    fn finish(self) -> Vec<String> {
        let events = self.events;
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| (events[i].at, i));
        let mut ids: Vec<String> = vec![String::new(); events.len()];
        let mut seq: HashMap<(&'static str, i64), u32> = HashMap::new();
        let mut out = Vec::with_capacity(events.len() + 16);
        for i in order {
            let e = &events[i];
            let d = e.at.div_euclid(DAY);
            let n = seq.entry((e.source, d)).or_default();
            *n += 1;
            let (y, m, dd) = civil(d as i32);
            let id = format!("{}-{y:04}{m:02}{dd:02}-{n:06}", e.source);
            let mut line = String::with_capacity(200);
            line.push_str("{\"event_id\":\"");
            line.push_str(&id);
            line.push_str("\",\"source\":\"");
            line.push_str(e.source);
            line.push_str("\",\"type\":\"");
            line.push_str(e.kind);
            line.push_str("\",\"occurred_at\":\"");
            format_local(e.at, &mut line);
            line.push_str("\",\"data\":");
            line.push_str(&e.data);
            if let Some(target) = e.voids {
                line.push_str(",\"voids\":\"");
                line.push_str(&ids[target]);
                line.push('"');
            }
            line.push('}');
            if e.duplicate {
                out.push(line.clone());
            }
            out.push(line);
            ids[i] = id;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The feeds.

/// Resident registry (monthly population, declining about 0.5 % a year) and the card
/// system: monthly holders figure, daily cards handed over and surrendered. The holding
/// rate starts at 82.0 % and rises about 1.35 points a year (on pace for 84.6 %).
fn population_and_cards(h: &mut History<'_>, seed: u64, now_day: i32) {
    let months = months_through(now_day) + 1;
    let (population, holders) = population_and_holders(seed, months);
    for k in 0..months {
        let at = local(month_start(k), 0);
        let pop = population[k];
        h.push(
            at,
            "juki",
            "population.snapshot",
            format!("{{\"population\":{pop}}}"),
        );
        let held = holders[k];
        h.push(
            at,
            "card",
            "mynumber_card.holders_snapshot",
            format!("{{\"holders\":{held}}}"),
        );
    }
    card_deltas(h, seed, now_day, &holders);
}

/// The registry's population and the card holders at the start of each month.
fn population_and_holders(seed: u64, months: usize) -> (Vec<i64>, Vec<i64>) {
    let mut rng = Rng::new(seed, "population");
    let mut population = Vec::with_capacity(months + 1);
    let mut holders = Vec::with_capacity(months + 1);
    let mut p = 130_480 + rng.between(-150, 150);
    for k in 0..=months {
        if k > 0 {
            // The change over the month before: students and workers leave in March–April.
            let (_, m) = month_of(k - 1);
            let drift = match m {
                3 => -190.0,
                4 => -90.0,
                _ => -42.0,
            };
            p += (drift + 15.0 * rng.normal()).round() as i64;
        }
        let noise = if k == 0 { 0.0 } else { 0.02 * rng.normal() };
        let rate = 82.0 + 1.35 * years(month_start(k)) + noise;
        population.push(p);
        holders.push((rate / 100.0 * p as f64).round() as i64);
    }
    (population, holders)
}

/// Cards handed over and surrendered, per business day, so that the holders move from
/// one monthly figure to the next; what the deltas miss (cards of people moving in,
/// ~110 a month) arrives with the next registry figure.
fn card_deltas(h: &mut History<'_>, seed: u64, now_day: i32, holders: &[i64]) {
    const SURRENDERED: [(&str, f64); 5] = [
        ("death", 4.6),
        ("moved_out", 5.8),
        ("returned", 0.6),
        ("expired", 0.9),
        ("other", 0.25),
    ];
    let months = months_through(now_day) + 1;
    let surrendered_per_day: f64 = SURRENDERED.iter().map(|(_, l)| l).sum();
    let mut rng = Rng::new(seed, "card");
    for k in 0..months - 1 {
        let (y, m) = month_of(k);
        let days = h.cal.business_days_of_month(y, m);
        let n = days.len().max(1) as f64;
        let net = (holders[k + 1] - holders[k]) as f64;
        let new_per_day = ((net + surrendered_per_day * n - 110.0) / n).max(2.0);
        for d in days {
            if d > now_day {
                break;
            }
            let at = local(d, hms(17, 20, 0));
            let y = years(d);
            for (kind, lambda) in [
                ("new", new_per_day),
                ("renewal", 36.0 + 8.0 * y),
                ("reissue", 1.3),
            ] {
                let count = rng.poisson(lambda);
                if count > 0 {
                    let data = format!("{{\"count\":{count},\"kind\":\"{kind}\"}}");
                    h.push(at, "card", "mynumber_card.issued", data);
                }
            }
            for (reason, lambda) in SURRENDERED {
                let count = rng.poisson(lambda);
                if count > 0 {
                    let data = format!("{{\"count\":{count},\"reason\":\"{reason}\"}}");
                    h.push(at, "card", "mynumber_card.surrendered", data);
                }
            }
        }
    }
}

/// Weighted choices (value, weight).
type Mix = &'static [(&'static str, f64)];

/// The `count`s of a certificate event, and their average.
const CERT_COUNTS: [(i64, f64); 3] = [(1, 0.82), (2, 0.14), (3, 0.04)];
const CERT_AVG_COUNT: f64 = 0.82 + 2.0 * 0.14 + 3.0 * 0.04;

const CERT_SEASON: [f64; 12] = [
    0.92, 0.98, 1.30, 1.28, 1.00, 1.08, 0.98, 0.90, 0.93, 0.97, 0.92, 0.84,
];
const CERT_KONBINI: [(&str, f64); 4] = [
    ("juminhyo", 0.48),
    ("inkan", 0.27),
    ("koseki", 0.10),
    ("tax", 0.15),
];
const CERT_COUNTER: [(&str, f64); 5] = [
    ("juminhyo", 0.40),
    ("inkan", 0.18),
    ("koseki", 0.20),
    ("tax", 0.14),
    ("other", 0.08),
];
const CERT_MAIL: [(&str, f64); 4] = [
    ("koseki", 0.55),
    ("juminhyo", 0.30),
    ("tax", 0.10),
    ("other", 0.05),
];
const CERT_ONLINE: [(&str, f64); 3] = [("juminhyo", 0.5), ("tax", 0.3), ("koseki", 0.2)];

/// Certificates, issued one request at a time: about 11,000 a month, the convenience
/// stores' share rising from 40.5 % (FY2025 ≈ 41.2 %) by 1.5 points a year — behind the
/// 43.7 % the plan wants in FY2026.
fn certificates(h: &mut History<'_>, seed: u64, now_day: i32) {
    let mut rng = Rng::new(seed, "certificates");
    for k in 0..months_through(now_day) {
        let (_, m) = month_of(k);
        let first = month_start(k);
        let last = month_start(k + 1) - 1;
        let all = f64::from(last - first + 1);
        let konbini_days = (first..=last).filter(|d| Calendar::konbini(*d)).count() as f64;
        let business_days = h.cal.business_days(first, last).len() as f64;
        let volume = 11_000.0 * CERT_SEASON[m as usize - 1] * (1.0 - 0.012 * years(first));
        for d in first..=last.min(now_day) {
            let t = years(d);
            let konbini = 40.45 + 1.5 * t;
            let mail = 4.5;
            let online = 1.0 + 0.5 * t;
            let counter = 100.0 - konbini - mail - online;
            let per_day = |share: f64, days: f64| volume * share / 100.0 / days / CERT_AVG_COUNT;
            let business = h.cal.business(d);
            let channels: [(&str, &str, f64, Mix); 4] = [
                (
                    "konbini",
                    "konbini",
                    if Calendar::konbini(d) {
                        per_day(konbini, konbini_days)
                    } else {
                        0.0
                    },
                    &CERT_KONBINI,
                ),
                (
                    "madoguchi",
                    "counter",
                    if business {
                        per_day(counter, business_days)
                    } else {
                        0.0
                    },
                    &CERT_COUNTER,
                ),
                (
                    "madoguchi",
                    "mail",
                    if business {
                        per_day(mail, business_days)
                    } else {
                        0.0
                    },
                    &CERT_MAIL,
                ),
                ("madoguchi", "online", per_day(online, all), &CERT_ONLINE),
            ];
            for (source, channel, lambda, kinds) in channels {
                for _ in 0..rng.poisson(lambda) {
                    certificate_request(h, &mut rng, d, (source, channel), kinds);
                }
            }
        }
    }
}

/// One certificate request on day `d` at a channel: its time, kind and count, now and
/// then voided later or sent twice.
fn certificate_request(
    h: &mut History<'_>,
    rng: &mut Rng,
    d: i32,
    (source, channel): (&'static str, &str),
    kinds: Mix,
) {
    let at = local(
        d,
        match channel {
            "konbini" => rng.konbini_time(),
            "online" => rng.online_time(),
            _ => rng.counter_time(),
        },
    );
    let certificate = rng.weighted(kinds);
    let count = rng.weighted(&CERT_COUNTS);
    let data = format!(
        "{{\"channel\":\"{channel}\",\"certificate\":\"{certificate}\",\"count\":{count}}}"
    );
    let voided = rng.chance(1.0 / 30_000.0);
    let duplicate = rng.chance(1.0 / 30_000.0);
    let delay = rng.between(10 * 60, 90 * 60);
    if let Some(i) = h.push(at, source, "certificate.issued", data) {
        h.events[i].duplicate = duplicate;
        if voided {
            h.void(at + delay, i);
        }
    }
}

const APP_SEASON: [f64; 12] = [
    1.10, 1.15, 1.20, 1.25, 0.95, 1.10, 0.95, 0.85, 0.90, 0.95, 0.90, 0.80,
];
const APP_ONLINE: [(&str, f64); 14] = [
    ("shisetsu-yoyaku", 0.20),
    ("kenshin-yoyaku", 0.12),
    ("sodaigomi-uketsuke", 0.12),
    ("ibento-moshikomi", 0.10),
    ("jidouteate-genkyo", 0.06),
    ("hoikusho-nyusho", 0.05),
    ("gakudo-nyusho", 0.04),
    ("juminhyo-yuso-seikyu", 0.05),
    ("tenshutsu-todoke", 0.04),
    ("furusato-nozei", 0.08),
    ("inu-toroku", 0.02),
    ("kyushoku-kaiji", 0.03),
    ("jutaku-kaishu-hojo", 0.04),
    ("bosai-mail-toroku", 0.05),
];
const APP_COUNTER: [(&str, f64); 10] = [
    ("jidouteate-genkyo", 0.10),
    ("hoikusho-nyusho", 0.12),
    ("gakudo-nyusho", 0.06),
    ("kokuho-kanyu", 0.16),
    ("kaigo-nintei", 0.14),
    ("inkan-toroku", 0.12),
    ("sodaigomi-uketsuke", 0.08),
    ("jutaku-kaishu-hojo", 0.06),
    ("shogai-fukushi", 0.10),
    ("inu-toroku", 0.06),
];
const APP_COUNTS: [(i64, f64); 3] = [(1, 0.95), (2, 0.04), (3, 0.01)];
const APP_AVG: f64 = 0.95 + 2.0 * 0.04 + 3.0 * 0.01;

/// Applications: about 5,400 a month, online via the e-application portal, at the
/// counters or by mail; the online share rises from 61.2 % by 1.6 points a year (FY2025
/// ≈ 62 %, FY2026 ≈ 63.5 % against a target of 65 %).
fn applications(h: &mut History<'_>, seed: u64, now_day: i32) {
    let mut rng = Rng::new(seed, "applications");
    for k in 0..months_through(now_day) {
        let (_, m) = month_of(k);
        let first = month_start(k);
        let last = month_start(k + 1) - 1;
        let all = f64::from(last - first + 1);
        let business_days = h.cal.business_days(first, last).len() as f64;
        let volume = 5_400.0 * APP_SEASON[m as usize - 1] * (1.0 + 0.02 * years(first));
        for d in first..=last.min(now_day) {
            let t = years(d);
            let online = 61.2 + 1.6 * t;
            let mail = 3.0;
            let counter = 100.0 - online - mail;
            let business = h.cal.business(d);
            let per_day = |share: f64, days: f64| volume * share / 100.0 / days / APP_AVG;
            let channels = [
                ("portal", "online", per_day(online, all)),
                (
                    "madoguchi",
                    "counter",
                    if business {
                        per_day(counter, business_days)
                    } else {
                        0.0
                    },
                ),
                (
                    "madoguchi",
                    "mail",
                    if business {
                        per_day(mail, business_days)
                    } else {
                        0.0
                    },
                ),
            ];
            for (source, channel, lambda) in channels {
                for _ in 0..rng.poisson(lambda) {
                    application(h, &mut rng, d, (source, channel));
                }
            }
        }
    }
}

/// One application on day `d` through a channel, now and then sent twice.
fn application(
    h: &mut History<'_>,
    rng: &mut Rng,
    d: i32,
    (source, channel): (&'static str, &str),
) {
    let (second, procedure) = if channel == "online" {
        (rng.online_time(), rng.weighted(&APP_ONLINE))
    } else {
        (rng.counter_time(), rng.weighted(&APP_COUNTER))
    };
    let count = rng.weighted(&APP_COUNTS);
    let data =
        format!("{{\"procedure\":\"{procedure}\",\"channel\":\"{channel}\",\"count\":{count}}}");
    let duplicate = rng.chance(1.0 / 30_000.0);
    if let Some(i) = h.push(local(d, second), source, "application.submitted", data) {
        h.events[i].duplicate = duplicate;
    }
}

/// The e-application catalogue, monthly: about 300 procedures in scope, the online share
/// rising from 83 % (April 2025) to 86.6 % (April 2026) and then faster, on pace for 90 %.
fn catalogue(h: &mut History<'_>, seed: u64, now_day: i32) {
    let mut rng = Rng::new(seed, "catalogue");
    let mut online_before = 0;
    for k in 0..months_through(now_day) {
        let d = month_start(k);
        let t = years(d);
        let in_scope = 298 + (k as i64) / 4;
        let rate = if t < 1.0 {
            83.0 + 3.6 * t
        } else {
            86.6 + 4.4 * (t - 1.0)
        };
        let jitter = if k == 0 { 0.0 } else { 0.3 * rng.normal() };
        let online = ((in_scope as f64 * (rate + jitter) / 100.0).round() as i64)
            .max(online_before)
            .min(in_scope);
        online_before = online;
        h.push(
            local(d, 0),
            "portal",
            "procedure.catalog_snapshot",
            format!("{{\"in_scope\":{in_scope},\"online\":{online}}}"),
        );
    }
}

/// Copy paper: A4 in two to four purchases a month (1.86 million sheets in FY2025, about
/// 8 % fewer each year after), A3 most months, B4 now and then.
fn paper(h: &mut History<'_>, seed: u64, sim_end: i32) {
    const SEASON: [f64; 12] = [
        0.95, 1.00, 1.10, 1.15, 1.00, 1.00, 0.95, 0.80, 1.00, 1.05, 1.00, 1.00,
    ];
    let season_sum: f64 = SEASON.iter().sum();
    let mut rng = Rng::new(seed, "paper");
    for k in 0..months_through(sim_end) {
        let (y, m) = month_of(k);
        let fy = fy_of(month_start(k));
        let annual = 1_860_000.0 * 0.92f64.powi(fy - 2025);
        let a4 = (annual * SEASON[m as usize - 1] / season_sum) as i64;
        let days = h.cal.business_days_of_month(y, m);
        let purchases = rng.between(2, 4) as usize;
        let parts = split(&mut rng, a4 / 2_500, purchases, (0.6, 1.4), 1);
        for boxes in parts {
            if let Some(d) = rng.pick(&days) {
                let at = local(d, rng.office_time());
                let sheets = boxes * 2_500;
                let data = format!("{{\"size\":\"A4\",\"sheets\":{sheets}}}");
                h.push(at, "procurement", "paper.purchased", data);
            }
        }
        for (size, p, sheets) in [
            ("A3", 0.7, 1_500 * rng.between(2, 8)),
            ("B4", 0.15, 2_500 * rng.between(1, 2)),
        ] {
            if rng.chance(p) {
                if let Some(d) = rng.pick(&days) {
                    let at = local(d, rng.office_time());
                    let data = format!("{{\"size\":\"{size}\",\"sheets\":{sheets}}}");
                    h.push(at, "procurement", "paper.purchased", data);
                }
            }
        }
    }
}

/// The city's apps. うめっこ: 310 new registrations in FY2025, about 475 a year after
/// (on pace for 450). うめPON: walking campaigns in May and October; 4,331 users at the
/// end of FY2025, growing by about 2,150 a year (behind the 7,500 target).
fn apps(h: &mut History<'_>, seed: u64, sim_end: i32) {
    const UMEKKO_SEASON: [f64; 12] = [
        0.95, 0.90, 1.10, 1.50, 1.20, 0.95, 0.90, 0.85, 0.90, 0.95, 0.90, 0.90,
    ];
    const UMEPON_SEASON: [f64; 12] = [
        0.60, 0.60, 0.80, 1.00, 2.20, 1.30, 0.90, 0.70, 0.80, 2.20, 1.30, 0.60,
    ];
    let mean = |s: &[f64; 12]| s.iter().sum::<f64>() / 12.0;
    let (umekko_mean, umepon_mean) = (mean(&UMEKKO_SEASON), mean(&UMEPON_SEASON));
    let start = start_day();
    let span = (sim_end - start + 1) as usize;
    let mut rng = Rng::new(seed, "apps");
    let (mut umekko_dither, mut umepon_dither) = (Dither::default(), Dither::default());
    // Per day: (umekko registrations, umepon registrations, umepon accounts deleted).
    let mut days: Vec<(u64, u64, u64)> = Vec::with_capacity(span);
    for d in start..=sim_end {
        let (_, m, _) = civil(d);
        let fy = fy_of(d);
        let umekko_year = if fy == 2025 { 310.0 } else { 475.0 };
        let umepon_year = match fy {
            2025 => 1_420.0,
            2026 => 2_150.0,
            _ => 2_400.0,
        };
        let umekko = umekko_dither.take(
            &mut rng,
            umekko_year / 365.0 * UMEKKO_SEASON[m as usize - 1] / umekko_mean,
        );
        let umepon = umepon_dither.take(
            &mut rng,
            umepon_year / 365.0 * UMEPON_SEASON[m as usize - 1] / umepon_mean,
        );
        let deleted = rng.poisson(0.35);
        days.push((umekko, umepon, deleted));
    }
    // Calibrate うめPON's opening figure so that FY2025 closes at 4,331 users (the plan's
    // baseline): the figure of March 1, 2026 plus March's registrations.
    let march = (day(2026, 3, 1) - start) as usize;
    let fy_end = (day(2026, 3, 31) - start) as usize;
    let before: i64 = days[..march]
        .iter()
        .map(|&(_, r, x)| r as i64 - x as i64)
        .sum();
    let in_march: i64 = days[march..=fy_end].iter().map(|&(_, r, _)| r as i64).sum();
    let mut umepon_users = 4_331 - before - in_march;
    let mut umekko_users: i64 = 2_650;
    for (i, &(umekko, umepon, deleted)) in days.iter().enumerate() {
        let d = start + i as i32;
        if civil(d).2 == 1 {
            let at = local(d, 0);
            for (app, users) in [("umekko", umekko_users), ("umepon", umepon_users)] {
                let data = format!("{{\"app\":\"{app}\",\"users\":{users}}}");
                h.push(at, "apps", "app.users_snapshot", data);
            }
            // Children outgrow うめっこ.
            umekko_users -= 8;
        }
        for (app, n) in [("umekko", umekko), ("umepon", umepon)] {
            for _ in 0..n {
                let at = local(d, rng.online_time());
                let data = format!("{{\"app\":\"{app}\",\"count\":1}}");
                h.push(at, "apps", "app.registered", data);
            }
        }
        umekko_users += umekko as i64;
        umepon_users += umepon as i64 - deleted as i64;
    }
}

/// The taxi-fare subsidy: about 9,000 eligible people; registrations made with the card
/// rise from 14.6 % (April 2025) to 17.2 % (April 2026), then by 3.9 points a year —
/// behind the 23 % target. Registrations that lapse only show in the monthly figure.
fn taxi_subsidy(h: &mut History<'_>, seed: u64, now_day: i32) {
    let months = months_through(now_day) + 1;
    let mut rng = Rng::new(seed, "welfare-monthly");
    let mut eligible = Vec::with_capacity(months + 1);
    let mut card = Vec::with_capacity(months + 1);
    for k in 0..=months {
        let e = 8_940 + 14 * k as i64 + if k == 0 { 0 } else { rng.between(-6, 6) };
        let t = years(month_start(k));
        let rate = if t < 1.0 {
            14.6 + 2.6 * t
        } else {
            17.2 + 3.9 * (t - 1.0)
        };
        eligible.push(e);
        card.push((e as f64 * rate / 100.0).round() as i64);
    }
    let mut rng = Rng::new(seed, "welfare");
    let mut dither = Dither::default();
    for k in 0..months - 1 {
        let at = local(month_start(k), 0);
        let e = eligible[k];
        h.push(
            at,
            "welfare",
            "taxi_subsidy.eligible_snapshot",
            format!("{{\"eligible\":{e}}}"),
        );
        let c = card[k];
        h.push(
            at,
            "welfare",
            "taxi_subsidy.registered_snapshot",
            format!("{{\"registered\":{c}}}"),
        );
        let (y, m) = month_of(k);
        let days = h.cal.business_days_of_month(y, m);
        let per_day = (card[k + 1] - card[k] + 4) as f64 / days.len().max(1) as f64;
        for d in days {
            if d > now_day {
                break;
            }
            let with_card = dither.take(&mut rng, per_day);
            let other = rng.poisson(2.2);
            for (method, n) in [("mynumber_card", with_card), ("other", other)] {
                for _ in 0..n {
                    let at = local(d, rng.counter_time());
                    let data = format!("{{\"method\":\"{method}\",\"count\":1}}");
                    h.push(at, "welfare", "taxi_subsidy.registered", data);
                }
            }
        }
    }
}

/// The document system: about 160 approvals a business day; of the staff-originated
/// ones (発意起案) about 85 % are electronic, a little more each year.
fn documents(h: &mut History<'_>, seed: u64, now_day: i32) {
    let mut rng = Rng::new(seed, "docmgmt");
    for d in start_day()..=now_day {
        if !h.cal.business(d) {
            continue;
        }
        let (_, m, _) = civil(d);
        let season = match m {
            3 => 1.3,
            4 => 1.1,
            8 => 0.85,
            _ => 1.0,
        };
        let t = years(d);
        for (origin, lambda, electronic) in [
            ("hatsui", 128.0 * season, 0.84 + 0.022 * t),
            ("other", 36.0 * season, 0.60),
        ] {
            for _ in 0..rng.poisson(lambda) {
                let at = local(d, rng.time(hms(8, 30, 0), hms(18, 30, 0)));
                let channel = if rng.chance(electronic) {
                    "electronic"
                } else {
                    "paper"
                };
                let data =
                    format!("{{\"channel\":\"{channel}\",\"origin\":\"{origin}\",\"count\":1}}");
                h.push(at, "docmgmt", "document.approved", data);
            }
        }
    }
}

/// BPR: hours saved, three or four reports a month (each for one initiative); FY2025
/// totals exactly 6,070 h (the plan's baseline), FY2026 about 10,450 h (on pace for
/// 10,000).
fn bpr(h: &mut History<'_>, seed: u64, sim_end: i32) {
    const INITIATIVES: [(&str, i32); 12] = [
        ("bpr-rpa-juminzei", 2025),
        ("bpr-ocr-kokuho", 2025),
        ("bpr-kakanai-madoguchi", 2025),
        ("bpr-chatbot", 2025),
        ("bpr-denshi-kessai", 2025),
        ("bpr-web-kaigi", 2025),
        ("bpr-genai-bunsho", 2026),
        ("bpr-rpa-kaigo", 2026),
        ("bpr-kintai-system", 2026),
        ("bpr-ocr-hoiku", 2026),
        ("bpr-lgwan-chat", 2027),
        ("bpr-denshi-keiyaku", 2027),
    ];
    let mut rng = Rng::new(seed, "bpr");
    for fy in 2025..=fy_of(sim_end) {
        let total = match fy {
            2025 => 607_000,
            2026 => 1_045_000,
            _ => 1_060_000,
        };
        let mut reports: Vec<i32> = Vec::new();
        for month in 0..12 {
            let (y, m) = month_of((fy - 2025) as usize * 12 + month);
            let days = h.cal.business_days_of_month(y, m);
            for _ in 0..rng.between(3, 4) {
                reports.extend(rng.pick(&days));
            }
        }
        let hours = split(&mut rng, total, reports.len(), (0.7, 1.3), 1);
        let available: Vec<(&str, f64)> = INITIATIVES
            .iter()
            .filter(|(_, since)| *since <= fy)
            .map(|(id, _)| (*id, 1.0))
            .collect();
        for (d, centi) in reports.into_iter().zip(hours) {
            let initiative = rng.weighted(&available);
            let at = local(d, rng.office_time());
            let data = format!(
                "{{\"hours\":{}.{:02},\"initiative\":\"{initiative}\"}}",
                centi / 100,
                centi % 100
            );
            h.push(at, "dx_office", "bpr.hours_saved", data);
        }
    }
}

/// HR: headcount monthly (about 1,400; hires on April 1) and telework days by
/// pseudonymous staff ids. Distinct teleworkers: 154 in FY2025 (11 %); FY2026 has
/// 75 regulars plus 110 occasional ones spread over the year (13 %) — behind the
/// 20 % pace.
fn staff(h: &mut History<'_>, seed: u64, sim_end: i32) {
    const POOL: usize = 1_460;
    let salt = Rng::new(seed, "hr-staff-ids").next_u64();
    let ids: Vec<String> = (0..POOL as u64)
        .map(|i| {
            let mut r = Rng::new(salt ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d), "staff");
            format!("st-{:010x}", r.next_u64() & 0xff_ffff_ffff)
        })
        .collect();
    let mut rng = Rng::new(seed, "hr-headcount");
    let mut headcount: i64 = 1_398;
    for k in 0..months_through(sim_end) {
        let (_, m) = month_of(k);
        if k > 0 {
            headcount += if m == 4 { 11 } else { -rng.between(0, 2) };
        }
        h.push(
            local(month_start(k), 0),
            "hr",
            "staff.headcount_snapshot",
            format!("{{\"headcount\":{headcount}}}"),
        );
    }
    for fy in 2025..=fy_of(sim_end) {
        let (regulars, occasional) = match fy {
            2025 => (60, 94),
            2026 => (75, 110),
            n => (
                75 + 30 * (n - 2026) as usize,
                110 + 40 * (n - 2026) as usize,
            ),
        };
        let mut rng = Rng::new(seed, &format!("telework-{fy}"));
        let days = h.cal.business_days(day(fy, 4, 1), day(fy + 1, 3, 31));
        // A partial Fisher–Yates shuffle picks this year's teleworkers.
        let mut pool: Vec<usize> = (0..POOL).collect();
        let chosen = (regulars + occasional).min(POOL);
        for i in 0..chosen {
            let j = i + rng.below((POOL - i) as u64) as usize;
            pool.swap(i, j);
        }
        for (n, &who) in pool[..chosen].iter().enumerate() {
            let mut when: Vec<i32> = if n < regulars {
                let wd = rng.between(1, 5) as i32;
                days.iter()
                    .copied()
                    .filter(|d| weekday(*d) == wd)
                    .filter(|_| rng.chance(0.8))
                    .collect()
            } else {
                let first = rng.below(days.len() as u64) as usize;
                let mut v = vec![days[first]];
                for _ in 0..rng.between(0, 4) {
                    let later = first + rng.below((days.len() - first) as u64) as usize;
                    v.push(days[later]);
                }
                v
            };
            when.sort_unstable();
            when.dedup();
            for d in when {
                let at = local(d, rng.time(hms(8, 15, 0), hms(9, 30, 0)));
                let data = format!("{{\"staff\":\"{}\"}}", ids[who]);
                h.push(at, "hr", "telework.day", data);
            }
        }
    }
}

/// Smartphone/PC classes for seniors: two sessions a month in May, June, October and
/// November, one in the other months, none in August. FY2025 totals 108 participants
/// (the plan's baseline), later years 106. A few other classes (programming for
/// children) on Saturdays.
fn classes(h: &mut History<'_>, seed: u64, sim_end: i32) {
    let mut rng = Rng::new(seed, "classes");
    for fy in 2025..=fy_of(sim_end) {
        let total = if fy == 2025 { 108 } else { 106 };
        let mut sessions = Vec::new();
        for month in 0..12 {
            let (y, m) = month_of((fy - 2025) as usize * 12 + month);
            if m == 8 {
                continue; // summer break
            }
            // Sessions fall between the 5th and the 20th (community-centre bookings).
            let days: Vec<i32> = h
                .cal
                .business_days_of_month(y, m)
                .into_iter()
                .filter(|d| (5..=20).contains(&civil(*d).2))
                .collect();
            // Spring and autumn courses have two sessions a month.
            let n = if matches!(m, 5 | 6 | 10 | 11) { 2 } else { 1 };
            for _ in 0..n {
                sessions.extend(rng.pick(&days));
            }
        }
        sessions.sort_unstable();
        let participants = split(&mut rng, total, sessions.len(), (0.7, 1.3), 1);
        for (d, n) in sessions.into_iter().zip(participants) {
            let at = local(
                d,
                if rng.chance(0.5) {
                    hms(10, 0, 0)
                } else {
                    hms(14, 0, 0)
                },
            );
            let data = format!("{{\"class\":\"senior_digital\",\"count\":{n}}}");
            h.push(at, "dx_office", "class.attended", data);
        }
        for month in [6, 11, 2] {
            let y = if month < 4 { fy + 1 } else { fy };
            let first = day(y, month, 1);
            let saturday = first + (6 - weekday(first)).rem_euclid(7) + 7;
            let n = rng.between(10, 20);
            let data = format!("{{\"class\":\"other\",\"count\":{n}}}");
            h.push(
                local(saturday, hms(13, 30, 0)),
                "dx_office",
                "class.attended",
                data,
            );
        }
    }
}

/// The open data catalogue: 36 data sets on April 1, 2025; 42 at the end of FY2025;
/// 45 by late November 2026 and 47 by March 2027 (on pace for 46).
fn open_data(h: &mut History<'_>, seed: u64, sim_end: i32) {
    // (data set, year, month, published = true / withdrawn = false)
    const SCHEDULE: [(&str, i32, u32, bool); 15] = [
        ("od-evacuation-shelters", 2025, 5, true),
        ("od-aed-locations", 2025, 6, true),
        ("od-public-wifi-spots", 2025, 7, true),
        ("od-population-by-district", 2025, 9, true),
        ("od-childcare-facilities", 2025, 10, true),
        ("od-bus-stops-legacy", 2025, 11, false),
        ("od-garbage-collection-calendar", 2025, 12, true),
        ("od-tourist-spots", 2026, 2, true),
        ("od-care-facilities", 2026, 5, true),
        ("od-public-toilets", 2026, 7, true),
        ("od-aed-locations-old", 2026, 8, false),
        ("od-hazard-map-points", 2026, 9, true),
        ("od-library-statistics", 2026, 10, true),
        ("od-polling-places", 2027, 1, true),
        ("od-city-events", 2027, 3, true),
    ];
    let mut rng = Rng::new(seed, "opendata");
    // (when, +1 or -1)
    let mut changes: Vec<(i64, i64)> = Vec::new();
    let mut emit = |h: &mut History<'_>, rng: &mut Rng, id: &str, y: i32, m: u32, up: bool| {
        // Mid-month (days 3–24), on a business day.
        let days: Vec<i32> = h
            .cal
            .business_days_of_month(y, m)
            .into_iter()
            .filter(|d| (3..=24).contains(&civil(*d).2))
            .collect();
        if let Some(d) = rng.pick(&days) {
            let at = local(d, rng.office_time());
            let kind = if up {
                "opendata.published"
            } else {
                "opendata.withdrawn"
            };
            h.push(at, "opendata", kind, format!("{{\"dataset\":\"{id}\"}}"));
            changes.push((at, if up { 1 } else { -1 }));
        }
    };
    for (id, y, m, up) in SCHEDULE {
        emit(h, &mut rng, id, y, m, up);
    }
    // Later years: a new data set every other month.
    let mut k = months_through(day(2027, 3, 31));
    while month_start(k) <= sim_end {
        let (y, m) = month_of(k);
        let id = format!("od-dataset-{y:04}{m:02}");
        emit(h, &mut rng, &id, y, m, true);
        k += 2;
    }
    for k in 0..months_through(sim_end) {
        let at = local(month_start(k), 0);
        let published: i64 = 36
            + changes
                .iter()
                .filter(|(t, _)| *t < at)
                .map(|(_, c)| c)
                .sum::<i64>();
        h.push(
            at,
            "opendata",
            "opendata.catalog_snapshot",
            format!("{{\"published\":{published}}}"),
        );
    }
}

/// Accounting: online invoices are not in use in FY2025 (0 vendors); the system is built
/// in FY2026 (stage system_build in July) and vendors pre-register from October 2026.
/// eL-QR reaches the care and elderly-medical premiums in July 2026.
fn accounting(h: &mut History<'_>, seed: u64, sim_end: i32) {
    let mut rng = Rng::new(seed, "accounting");
    let july = h.cal.business_days_of_month(2026, 7);
    if let Some(d) = rng.pick(&july) {
        h.milestone(
            local(d, hms(10, 0, 0)),
            "accounting",
            "invoice_online",
            "system_build",
        );
    }
    let registration_start = day(2026, 10, 1);
    let mut dither = Dither::default();
    let mut vendors: i64 = 0;
    let mut next_stage = 0;
    let stages = [(20, "in_use_20_vendors", 2027), (40, "vendors_40", 2028)];
    for d in start_day()..=sim_end {
        if civil(d).2 == 1 {
            let data = format!("{{\"vendors\":{vendors}}}");
            h.push(local(d, 0), "accounting", "invoice_vendor.snapshot", data);
        }
        if d < registration_start || !h.cal.business(d) {
            continue;
        }
        let per_day = if fy_of(d) == 2026 { 0.45 } else { 0.3 };
        for _ in 0..dither.take(&mut rng, per_day) {
            let at = local(d, rng.office_time());
            h.push(
                at,
                "accounting",
                "invoice_vendor.registered",
                "{\"count\":1}".to_owned(),
            );
            vendors += 1;
        }
        if let Some(&(needed, id, from)) = stages.get(next_stage) {
            if vendors >= needed && fy_of(d) >= from {
                h.milestone(local(d, hms(17, 0, 0)), "accounting", "invoice_online", id);
                next_stage += 1;
            }
        }
    }
    h.milestone(
        local(day(2026, 7, 1), hms(9, 0, 0)),
        "accounting",
        "el_qr_public_funds",
        "care_and_elderly_medical_premiums",
    );
}

/// The DX office: the disposition-notice research starts in June 2026 (pilot in October
/// 2027), a security review every year (February 2026, then each September), eスポーツ
/// from FY2026 on (one event each August).
fn dx_office(h: &mut History<'_>, seed: u64, sim_end: i32) {
    let mut rng = Rng::new(seed, "dx_office");
    for (y, m, stage) in [(2026, 6, "research"), (2027, 10, "pilot_and_launch")] {
        let days = h.cal.business_days_of_month(y, m);
        if let Some(d) = rng.pick(&days) {
            h.milestone(
                local(d, hms(15, 0, 0)),
                "dx_office",
                "disposition_notice_online",
                stage,
            );
        }
    }
    for fy in 2025..=fy_of(sim_end) {
        let (y, m) = if fy == 2025 { (2026, 2) } else { (fy, 9) };
        let days = h.cal.business_days_of_month(y, m);
        if let Some(d) = rng.pick(&days) {
            h.push(
                local(d, hms(16, 0, 0)),
                "dx_office",
                "security.review_completed",
                "{\"count\":1}".to_owned(),
            );
        }
        if fy >= 2026 {
            // The fourth Saturday of August.
            let first = day(fy, 8, 1);
            let saturday = first + (6 - weekday(first)).rem_euclid(7) + 21;
            h.push(
                local(saturday, hms(13, 0, 0)),
                "dx_office",
                "esports.event_held",
                "{\"count\":1}".to_owned(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::OnceLock;

    use mieruka_aggregator::{Engine, FiscalYear, KpiKind};
    use mieruka_ingest::{decode, Status};

    use super::*;

    fn plan() -> &'static Plan {
        static PLAN: OnceLock<Plan> = OnceLock::new();
        PLAN.get_or_init(|| Plan::ome().unwrap())
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn now() -> Timestamp {
        ts("2026-11-25T12:00:00+09:00")
    }

    fn history() -> &'static [String] {
        static LINES: OnceLock<Vec<String>> = OnceLock::new();
        LINES.get_or_init(|| {
            generate(
                plan(),
                &DemoOptions {
                    now: now(),
                    seed: 1,
                },
            )
        })
    }

    #[test]
    fn the_readme_says_how_many_events_the_demo_generates() {
        // The README's figure is the count at its pinned `--now`, with `demo`'s default
        // seed (2026).
        let n = generate(
            plan(),
            &DemoOptions {
                now: now(),
                seed: 2026,
            },
        )
        .len();
        let grouped = n
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",");
        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&format!("{grouped} events")),
            "the README should say the demo generates {grouped} events at 2026-11-25"
        );
    }

    fn field<'a>(line: &'a str, key: &str) -> &'a str {
        let pat = format!("\"{key}\":\"");
        let start = line.find(&pat).unwrap() + pat.len();
        let end = start + line[start..].find('"').unwrap();
        &line[start..end]
    }

    #[test]
    fn every_line_decodes() {
        let plan = plan();
        for (n, line) in history().iter().enumerate() {
            if let Err(r) = decode(&plan.schema, line.as_bytes()) {
                panic!("line {} does not decode: {r:?}\n{line}", n + 1);
            }
        }
    }

    #[test]
    fn the_same_now_and_seed_give_the_same_history_and_another_seed_another() {
        let again = generate(
            plan(),
            &DemoOptions {
                now: now(),
                seed: 1,
            },
        );
        assert!(again == history(), "same (now, seed), different history");
        let other = generate(
            plan(),
            &DemoOptions {
                now: now(),
                seed: 2,
            },
        );
        assert!(other != history(), "another seed, same history");
    }

    #[test]
    fn an_earlier_now_cuts_the_same_history() {
        let earlier = ts("2026-06-10T15:30:00+09:00");
        let cut = generate(
            plan(),
            &DemoOptions {
                now: earlier,
                seed: 1,
            },
        );
        let plan = plan();
        let expected: Vec<&String> = history()
            .iter()
            .filter(|l| decode(&plan.schema, l.as_bytes()).unwrap().occurred_at <= earlier)
            .collect();
        assert_eq!(cut.len(), expected.len());
        assert!(cut.iter().zip(expected).all(|(a, b)| a == b));
        let before = generate(
            plan,
            &DemoOptions {
                now: ts("2025-03-31T23:59:59+09:00"),
                seed: 1,
            },
        );
        assert!(before.is_empty());
    }

    #[test]
    fn events_are_in_time_order_within_the_history() {
        let plan = plan();
        let start = ts("2025-04-01T00:00:00+09:00");
        let mut last = start;
        for line in history() {
            let e = decode(&plan.schema, line.as_bytes()).unwrap();
            assert!(e.occurred_at >= last, "out of order: {line}");
            assert!(e.occurred_at <= now(), "after now: {line}");
            assert!(line.contains("+09:00\""), "not JST: {line}");
            last = e.occurred_at;
        }
        let first = decode(&plan.schema, history()[0].as_bytes()).unwrap();
        assert_eq!(first.occurred_at, start);
    }

    #[test]
    fn every_level_has_a_snapshot_at_the_start() {
        let start = "2025-04-01T00:00:00+09:00";
        let opening: Vec<&str> = history()
            .iter()
            .take_while(|l| field(l, "occurred_at") == start)
            .map(|l| field(l, "type"))
            .collect();
        for kind in [
            "population.snapshot",
            "mynumber_card.holders_snapshot",
            "procedure.catalog_snapshot",
            "taxi_subsidy.eligible_snapshot",
            "taxi_subsidy.registered_snapshot",
            "app.users_snapshot",
            "opendata.catalog_snapshot",
            "invoice_vendor.snapshot",
            "staff.headcount_snapshot",
        ] {
            assert!(opening.contains(&kind), "no opening {kind}");
        }
    }

    #[test]
    fn ids_are_unique_per_source_sources_are_declared_and_ids_are_no_numbers() {
        let sources: HashMap<&str, Vec<&str>> = demo_sources().into_iter().collect();
        let mut seen: HashMap<(&str, &str), &str> = HashMap::new();
        let mut duplicates = 0;
        let mut voids = 0;
        for line in history() {
            let (id, source, kind) = (
                field(line, "event_id"),
                field(line, "source"),
                field(line, "type"),
            );
            assert!(
                sources.get(source).is_some_and(|t| t.contains(&kind)),
                "{source} does not declare {kind}"
            );
            assert!(id.starts_with(&format!("{source}-")), "{id}");
            let longest_digits = id
                .split(|c: char| !c.is_ascii_digit())
                .map(str::len)
                .max()
                .unwrap_or(0);
            assert!(longest_digits < 12, "{id}");
            if kind == "event.voided" {
                voids += 1;
            }
            if let Some(before) = seen.insert((source, id), line) {
                assert_eq!(before, line, "same id, different body");
                duplicates += 1;
            }
        }
        assert!(duplicates >= 1, "no duplicate delivery");
        assert!(voids >= 1, "no void");
    }

    #[test]
    fn staff_ids_are_opaque_hashes() {
        for line in history().iter().filter(|l| l.contains("telework.day")) {
            let staff = field(line, "staff");
            assert!(staff.starts_with("st-") && staff.len() == 13, "{staff}");
            assert!(staff[3..].chars().all(|c| c.is_ascii_hexdigit()), "{staff}");
        }
    }

    #[test]
    fn the_history_folds_into_plausible_fy2026_figures() {
        let plan = plan();
        let mut engine = Engine::new(plan);
        let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
        let mut duplicates = 0;
        for line in history() {
            let e = decode(&plan.schema, line.as_bytes()).unwrap();
            *per_type.entry(field(line, "type").to_owned()).or_default() += 1;
            match engine.apply(e) {
                Status::Accepted => {}
                Status::Duplicate => duplicates += 1,
                other => panic!("{other:?}: {line}"),
            }
        }
        eprintln!(
            "{} events ({duplicates} duplicate deliveries)",
            history().len()
        );
        for (kind, n) in &per_type {
            eprintln!("  {kind:<34} {n:>7}");
        }
        let figures = engine.figures(now());
        let fig = |id: &str, year: i32| {
            let k = plan.kpi_id(id).unwrap();
            figures
                .iter()
                .find(|f| f.kpi == k && f.year == FiscalYear(year))
                .unwrap()
        };
        let show = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2}"));
        eprintln!(
            "{:<36} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>6}",
            "FY2026", "value", "target", "start", "pace", "projection", "drift", "on_track"
        );
        for kpi in &plan.kpis {
            let f = fig(&kpi.id, 2026);
            eprintln!(
                "{:<36} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>6}",
                kpi.id,
                show(f.value),
                show(f.target),
                show(f.start),
                show(f.pace),
                show(f.projection),
                show(f.drift),
                f.on_track.map_or("-", |b| if b { "yes" } else { "no" })
            );
        }
        let value = |id: &str, year: i32| fig(id, year).value.unwrap();
        let card = value("mynumber_card_holding_rate", 2026);
        assert!((82.0..86.0).contains(&card), "card holding rate {card}");
        let konbini = value("konbini_issuance_rate", 2026);
        assert!((41.0..45.0).contains(&konbini), "konbini share {konbini}");
        let fy2026: Vec<_> = figures
            .iter()
            .filter(|f| f.year == FiscalYear(2026))
            .collect();
        assert!(fy2026.iter().any(|f| f.on_track == Some(true)));
        assert!(fy2026
            .iter()
            .any(|f| f.on_track == Some(false) || f.drift.is_some_and(|d| d < -f.tolerance)));
        for (k, kpi) in plan.kpis_with_ids() {
            if !matches!(kpi.kind, KpiKind::Milestone { .. }) {
                let f = fy2026.iter().find(|f| f.kpi == k).unwrap();
                assert!(f.value.is_some(), "{} has no FY2026 value", kpi.id);
            }
        }
        let umepon = value("umepon_registrations", 2025);
        assert!((umepon - 4_331.0).abs() <= 50.0, "umepon FY2025 {umepon}");
        assert_eq!(value("open_datasets_published", 2025), 42.0);
        assert!((value("bpr_hours_saved", 2025) - 6_070.0).abs() < 1e-6);
        assert_eq!(value("senior_digital_class_participants", 2025), 108.0);
        // The stories the demo tells.
        for (id, on_track) in [
            ("mynumber_card_holding_rate", true),
            ("online_procedure_coverage", true),
            ("umekko_new_registrations", true),
            ("bpr_hours_saved", true),
            ("open_datasets_published", true),
            ("senior_digital_class_participants", true),
            ("esports_events", true),
            ("security_measures", true),
            ("konbini_issuance_rate", false),
            ("online_procedure_usage_rate", false),
            ("taxi_subsidy_card_registration_rate", false),
            ("telework_rate", false),
            ("umepon_registrations", false),
        ] {
            assert_eq!(fig(id, 2026).on_track, Some(on_track), "{id}");
        }
        assert_eq!(value("disposition_notice_online", 2026), 1.0);
        assert_eq!(value("invoice_online", 2026), 1.0);
    }

    #[test]
    fn generation_is_fast() {
        let started = std::time::Instant::now();
        let lines = generate(
            plan(),
            &DemoOptions {
                now: now(),
                seed: 7,
            },
        );
        let elapsed = started.elapsed();
        eprintln!(
            "generate: {} events up to {} in {elapsed:?}",
            lines.len(),
            now()
        );
        assert!(
            (300_000..=600_000).contains(&lines.len()),
            "{}",
            lines.len()
        );
    }
}
