//! `mieruka-bench inbox`: a line system's Shift_JIS CSV export through a watched inbox,
//! measured end to end on this machine — a certificate export with Japanese headers
//! (the konbini mapping of the README's worked example) written first, then renamed
//! into the `[[inbox]]` folder of a real `standalone` on a fresh SQLite file; rows/s
//! from the rename to the file in `done/`, and the peak RSS of the importing process.
//! A benchmark, never a test: nothing is asserted on the figures.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::events::rss_mib;
use mieruka::config::InboxSettings;
use mieruka::roles::standalone::Standalone;
use mieruka_ingest::import::{CsvMapping, Encoding};

/// The mapping of the README's worked example, as a config file carries it.
const MAPPING: &str = include_str!("../../ingest/tests/fixtures/konbini.mapping.toml");

/// The export's header, as the convenience-store certificate system writes it.
const HEADER: &str = "受付番号,交付日時,交付方法,証明書種別,枚数";

/// One row of the export: a realistic mix of channels and certificates over FY2026
/// (April to December), ids of the form `K-20260501-0000001` (no 12-digit run).
fn row(n: u64) -> String {
    let channels = ["コンビニ", "窓口", "コンビニ", "郵送", "オンライン"];
    let certs = [
        "住民票の写し",
        "印鑑登録証明書",
        "戸籍全部事項証明書",
        "課税証明書",
        "所得証明書",
    ];
    let month = 4 + (n / 1000) % 9;
    let day = 1 + (n / 37) % 28;
    let (h, m, s) = (8 + n % 10, (n / 10) % 60, (n / 600) % 60);
    format!(
        "K-2026{month:02}{day:02}-{n:07},2026/{month:02}/{day:02} {h:02}:{m:02}:{s:02},{},{},{}",
        channels[(n % 5) as usize],
        certs[(n / 5 % 5) as usize],
        1 + n % 3
    )
}

/// Writes `rows` rows of the export to `path` in Shift_JIS, CRLF as Windows writes it,
/// a row at a time (the bench's own memory stays flat).
fn write_export(path: &Path, rows: u64) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut bytes = 0;
    for line in std::iter::once(HEADER.to_owned()).chain((0..rows).map(row)) {
        let (sjis, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&line);
        anyhow::ensure!(!unmappable, "a row has no Shift_JIS form: {line}");
        out.write_all(&sjis)?;
        out.write_all(b"\r\n")?;
        bytes += sjis.len() as u64 + 2;
    }
    out.flush()?;
    Ok(bytes)
}

/// Forgets this process's peak RSS so far (Linux: `5` into `/proc/self/clear_refs`),
/// so the peak measured is the import's, not the writing of the export.
fn reset_peak_rss() {
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak RSS ({error}); it includes writing the export");
    }
}

/// CPU seconds this process has used, user and system, all threads (Linux: fields 14
/// and 15 of `/proc/self/stat`, in the 100 Hz ticks every Linux reports there). On a
/// busy machine rows per CPU second says more than rows per second.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces: count the fields after its closing parenthesis.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// The bench's `[[inbox]]`: the konbini mapping, Shift_JIS declared, taken at once.
fn inbox_settings(dir: &Path) -> anyhow::Result<InboxSettings> {
    #[derive(serde::Deserialize)]
    struct Mappings {
        csv_mappings: BTreeMap<String, CsvMapping>,
    }
    let mut m: Mappings = toml::from_str(MAPPING).context("the konbini mapping")?;
    let mapping = m
        .csv_mappings
        .remove("konbini")
        .context("no [csv_mappings.konbini]")?;
    Ok(InboxSettings {
        name: "konbini".into(),
        dir: dir.to_owned(),
        mapping: Some(mapping),
        sources: vec!["konbini".into()],
        types: Vec::new(),
        pattern: Some("*.csv".into()),
        encoding: Some(Encoding::ShiftJis),
        settle: Duration::ZERO,
        poll: Duration::from_millis(100),
    })
}

/// Writes a `rows`-row Shift_JIS export under `dir` (fresh), drops it into the inbox of
/// a standalone on `dir/bench.db`, and prints rows/s and peak RSS once it is in `done/`.
pub async fn inbox(dir: &Path, rows: u64) -> anyhow::Result<()> {
    if dir.exists() {
        bail!("{} exists; the bench needs a fresh folder", dir.display());
    }
    let folder = dir.join("inbox").join("konbini");
    std::fs::create_dir_all(&folder).with_context(|| format!("{}", folder.display()))?;
    // Written beside the folder's files under a name never taken, then renamed into
    // place, as a file-transfer gateway does.
    let part = folder.join(".konbini_bench.csv.part");
    let started = Instant::now();
    let bytes = write_export(&part, rows)?;
    println!(
        "bench inbox: {rows} rows, {:.1} MiB of Shift_JIS CSV written in {:.1} s",
        bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );

    let mut settings = crate::ingest::settings(&dir.join("bench.db"))?;
    settings.inboxes = vec![inbox_settings(&folder)?];
    reset_peak_rss();
    let app = Standalone::build(&settings).await?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let (_, idle) = rss_mib();
    println!(
        "standalone ready on {} (rss {idle:.1} MiB)",
        dir.join("bench.db").display()
    );

    let file = "konbini_bench.csv";
    let (started, cpu) = (Instant::now(), cpu_seconds());
    std::fs::rename(&part, folder.join(file))?;
    let report = wait_for_report(&folder, file, started).await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let (peak, rss) = rss_mib();
    shutdown.cancel();
    server.await??;

    let count = |k: &str| report[k].as_u64().unwrap_or(0);
    println!(
        "{} in {secs:.1} s: {:.0} rows/s ({cpu:.1} CPU s, {:.0} rows per CPU second); accepted {}, duplicates {}, rejected {}; peak RSS {peak:.1} MiB (rss now {rss:.1} MiB)",
        report["outcome"].as_str().unwrap_or("?"),
        rows as f64 / secs,
        rows as f64 / cpu.max(0.01),
        count("accepted"),
        count("duplicates"),
        count("rejected")
    );
    if report["outcome"] != "done" {
        bail!("the export was not imported: {report}");
    }
    Ok(())
}

/// Waits until `done/FILE` or `failed/FILE` is there, printing the progress every 5 s;
/// returns its JSON report.
async fn wait_for_report(
    folder: &Path,
    file: &str,
    started: Instant,
) -> anyhow::Result<serde_json::Value> {
    let landed = |outcome: &str| -> PathBuf { folder.join(outcome).join(file) };
    let mut shown = Instant::now();
    loop {
        for outcome in ["done", "failed"] {
            if landed(outcome).exists() {
                let path = folder.join(outcome).join(format!("{file}.result.json"));
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("{}", path.display()))?;
                return Ok(serde_json::from_str(&text)?);
            }
        }
        if shown.elapsed() >= Duration::from_secs(5) {
            let (peak, rss) = rss_mib();
            println!(
                "  … {:.0} s, peak RSS {peak:.1} MiB, rss {rss:.1} MiB",
                started.elapsed().as_secs_f64()
            );
            shown = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
