//! The status page as a person sees it: `mieruka demo` rendered by a real headless
//! Chromium (Debian's `chromium`). The screenshot is kept as a test artefact,
//! `<target dir>/test-artifacts/status-page.png`, and the DOM Chromium built must show
//! every KPI of the plan: its row (`data-kpi="<id>"`) and its Japanese name. The status
//! page and a KPI's page with the explanation of its figure must fit a phone
//! (`scrollWidth` ≤ 390 px in a 390-px frame; artefacts `status-page-phone.png`,
//! `kpi-page.png`, `kpi-page-explained-phone.png`).

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mieruka_aggregator::Plan;

use crate::helpers::*;

/// How long one Chromium run may take before it is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// A Chromium run in its own process group (it forks zygote, GPU and renderer
/// processes); the whole group is killed on drop.
struct Chromium {
    child: Child,
    log: PathBuf,
}

impl Chromium {
    /// Runs `chromium --headless … <extra> <url>` with its own profile under `dir`;
    /// returns its stdout. Fails after `CHROMIUM_TIMEOUT` or on a non-zero exit.
    fn run(dir: &Path, name: &str, extra: &[&str], url: &str) -> String {
        let profile = dir.join(format!("chromium-profile-{name}"));
        let log = dir.join(format!("chromium-{name}.log"));
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,4000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromium ({e}): run ./scripts/test.sh (it installs chromium)")
            });
        let mut run = Chromium { child, log };
        // Drain stdout while it runs: a DOM is larger than a pipe's buffer.
        let mut stdout = run.child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut out).map(|_| out)
        });
        let deadline = Instant::now() + CHROMIUM_TIMEOUT;
        let status = loop {
            if let Some(status) = run.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "chromium {extra:?} did not finish within {CHROMIUM_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "chromium {extra:?} exited with {status}");
        run.kill_group(); // helpers it may have left behind hold the pipe open
        reader.join().unwrap().unwrap()
    }

    fn kill_group(&self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.kill_group();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {}:\n{}",
                self.log.display(),
                tail(&self.log, 30)
            );
        }
    }
}

/// `<CARGO_TARGET_DIR or target>/test-artifacts`, created.
pub(crate) fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn the_status_page_renders_every_kpi_in_a_real_browser() {
    let started = Instant::now();
    if Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("chromium is not installed: run ./scripts/test.sh (it installs chromium)");
    }
    // Without a Japanese font the screenshot shows boxes (the DOM checks still pass).
    if Command::new("fc-list")
        .arg(":lang=ja")
        .output()
        .is_ok_and(|o| o.stdout.is_empty())
    {
        eprintln!("warning: no Japanese font (`fc-list :lang=ja` is empty): the screenshot shows boxes; install Debian's fonts-ipafont-gothic");
    }
    let plan = Plan::ome().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path());
    let page = format!("{}/", demo.base);

    let shot = artifacts_dir().join("status-page.png");
    let _ = std::fs::remove_file(&shot); // never judge a stale one
    Chromium::run(
        dir.path(),
        "screenshot",
        &[&format!("--screenshot={}", shot.display())],
        &page,
    );
    eprintln!("status page screenshot: {}", shot.display());
    let png = std::fs::read(&shot)
        .unwrap_or_else(|e| panic!("chromium wrote no screenshot {}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        shot.display()
    );
    assert!(
        png.len() > 10_000,
        "{} is only {} bytes: a blank page?",
        shot.display(),
        png.len()
    );

    let dom = Chromium::run(dir.path(), "dom", &["--dump-dom"], &page);
    let missing: Vec<String> = plan
        .kpis
        .iter()
        .flat_map(|k| {
            let row = format!("data-kpi=\"{}\"", k.id);
            let name = html_escape(&k.name_ja);
            [
                (!dom.contains(&row)).then(|| row.clone()),
                (!dom.contains(&name)).then(|| format!("{} ({})", k.name_ja, k.id)),
            ]
        })
        .flatten()
        .collect();
    assert!(
        missing.is_empty(),
        "the rendered status page lacks {missing:?}; DOM ({} bytes) begins:\n{}",
        dom.len(),
        dom.chars().take(2000).collect::<String>()
    );

    demo.stop();
    eprintln!(
        "{} KPIs rendered; done in {:.1?}",
        plan.kpis.len(),
        started.elapsed()
    );
}

/// The phone width the pages must fit (an iPhone's CSS width).
const PHONE_WIDTH: u32 = 390;

/// A wrapper page (the test's, not the product's) showing `page` in a frame exactly
/// `PHONE_WIDTH` pixels wide — headless Chromium's window is at least 500 px — with a
/// script that writes the framed document's `scrollWidth` and the frame's viewport
/// width into the wrapper's DOM once the frame has loaded.
fn phone_frame(page: &str, height: u32) -> String {
    format!(
        "<!DOCTYPE html><html><body style=\"margin:0\">\
         <iframe id=\"f\" src=\"{page}\" style=\"width:{PHONE_WIDTH}px;height:{height}px;border:0\"></iframe>\
         <script>document.getElementById('f').addEventListener('load',function(){{\
         var d=this.contentDocument.documentElement;\
         document.body.setAttribute('data-scroll-width',d.scrollWidth);\
         document.body.setAttribute('data-inner-width',this.contentWindow.innerWidth)}})</script>\
         </body></html>"
    )
}

/// Writes `html` and its phone frame under `dir`; returns the frame's `file://` URL.
fn phone_files(dir: &Path, name: &str, html: &str, height: u32) -> String {
    std::fs::write(dir.join(format!("{name}.html")), html).unwrap();
    let frame = dir.join(format!("{name}-frame.html"));
    std::fs::write(&frame, phone_frame(&format!("{name}.html"), height)).unwrap();
    format!("file://{}", frame.display())
}

/// (scrollWidth, viewport width) of `html` rendered by Chromium `PHONE_WIDTH` pixels wide.
fn phone_widths(dir: &Path, name: &str, html: &str) -> (u32, u32) {
    let url = phone_files(dir, name, html, 844);
    let dom = Chromium::run(
        dir,
        name,
        &["--dump-dom", "--allow-file-access-from-files"],
        &url,
    );
    let attr = |a: &str| -> u32 {
        let rest = dom
            .split_once(&format!("{a}=\""))
            .unwrap_or_else(|| panic!("no {a} in the DOM of {name}: {dom}"))
            .1;
        rest.split('"').next().unwrap().parse().unwrap()
    };
    (attr("data-scroll-width"), attr("data-inner-width"))
}

fn get(url: &str) -> String {
    ureq::get(url).call().unwrap().into_string().unwrap()
}

#[test]
fn the_status_page_and_a_kpi_page_fit_a_phone_and_chart_the_year() {
    let plan = Plan::ome().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo_with_config(dir.path(), Some(DEMO_SOURCES));
    let status = get(&format!("{}/", demo.base));
    let kpi_page = get(&format!("{}/kpi/umepon_registrations", demo.base));
    let telework = get(&format!("{}/kpi/telework_rate", demo.base));
    let explained: serde_json::Value =
        serde_json::from_str(&get(&format!("{}/v1/kpis/umepon_registrations", demo.base))).unwrap();
    let metrics = Metrics::parse(&demo.scrape());

    let shot = artifacts_dir().join("status-page-phone.png");
    let _ = std::fs::remove_file(&shot);
    Chromium::run(
        dir.path(),
        "phone-screenshot",
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=500,3000",
        ],
        &phone_files(dir.path(), "phone-shot", &status, 3000),
    );
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000));
    eprintln!("phone screenshot: {}", shot.display());
    let kpi_shot = artifacts_dir().join("kpi-page.png");
    let _ = std::fs::remove_file(&kpi_shot);
    Chromium::run(
        dir.path(),
        "kpi-screenshot",
        &[
            &format!("--screenshot={}", kpi_shot.display()),
            "--window-size=1000,2600",
        ],
        &format!("{}/kpi/umepon_registrations", demo.base),
    );
    demo.stop();
    // A ratio's page with its explanation, as a phone shows it.
    let telework_shot = artifacts_dir().join("kpi-page-explained-phone.png");
    let _ = std::fs::remove_file(&telework_shot);
    Chromium::run(
        dir.path(),
        "telework-screenshot",
        &[
            &format!("--screenshot={}", telework_shot.display()),
            "--window-size=500,4200",
        ],
        &phone_files(dir.path(), "telework-shot", &telework, 4200),
    );
    assert!(std::fs::metadata(&telework_shot).is_ok_and(|m| m.len() > 10_000));

    for (name, html) in [
        ("status", &status),
        ("kpi", &kpi_page),
        ("kpi-telework", &telework),
    ] {
        let (scroll, inner) = phone_widths(dir.path(), &format!("phone-{name}"), html);
        eprintln!("{name} page at {PHONE_WIDTH} px: scrollWidth {scroll}, innerWidth {inner}");
        assert_eq!(inner, PHONE_WIDTH, "the viewport is not a phone's");
        assert!(
            scroll <= PHONE_WIDTH,
            "the {name} page is {scroll} px wide on a phone"
        );
    }

    // Every KPI with a value (milestones aside) has its small chart and a link to its page.
    for kpi in plan.kpis.iter().filter(|k| k.stages().is_none()) {
        let row = status
            .split(&format!("<tr data-kpi=\"{}\"", kpi.id))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap();
        assert!(row.contains(&format!("href=\"kpi/{}\"", kpi.id)), "{row}");
        if metrics.kpi("value", &kpi.id).is_some() {
            assert!(
                row.contains("<svg class=\"chart small\""),
                "{}: no chart",
                kpi.id
            );
        }
    }
    for class in ["value", "pace", "target", "last-year"] {
        assert!(
            kpi_page.contains(&format!("class=\"{class}\" points="))
                || kpi_page.contains(&format!("<line class=\"{class}\"")),
            "the KPI page's chart has no {class} line"
        );
    }
    assert!(kpi_page.contains("データ元") && kpi_page.contains("app back end"));

    // The page shows the explanation `GET /v1/kpis/<id>` gives, not a link to it.
    let formula = explained["formula"].as_str().unwrap();
    assert!(
        kpi_page.contains(
            &html_escape(formula)
                .replace('"', "&quot;")
                .replace('\'', "&#39;")
        ),
        "the page lacks the formula {formula:?}"
    );
    for part in [
        "data-shares=\"By month\"",
        "data-shares=\"By source\"",
        "計上件数",
    ] {
        assert!(kpi_page.contains(part), "the explanation has no {part}");
    }
    // Its feeds, by their display names, with their freshness.
    let feed = kpi_page
        .split("<tr data-source=\"apps\"")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no feed row for apps"));
    assert!(
        feed.contains("市公式アプリ") && feed.contains("毎週月曜"),
        "{feed}"
    );
    assert!(feed.contains("data-freshness"), "{feed}");
    assert!(
        !kpi_page.contains("data-source=\"juki\""),
        "juki does not feed うめPON"
    );
    // A ratio: numerator and denominator, the level's snapshot, the distinct footnote.
    for part in [
        "data-part=\"numerator\"",
        "data-part=\"denominator\"",
        "起点スナップショット",
        "id=\"distinct-months\"",
        "人事給与",
    ] {
        assert!(telework.contains(part), "the telework page has no {part}");
    }
    // The status page names every configured source in its feeds section.
    assert!(status.contains("id=\"feeds\"") && status.contains("市公式アプリ"));
    assert_eq!(
        status.matches("<tr data-source=").count(),
        mieruka::demo::demo_sources().len()
    );
}

/// Display names and cadences of two demo sources, as a city would configure them.
const DEMO_SOURCES: &str = "\
[sources.apps]
name = \"市公式アプリ\"
cadence = \"weekly\"
weekday = \"mon\"

[sources.hr]
name = \"人事給与（テレワーク・職員数）\"
cadence = \"monthly\"
day = 10
";
