//! The report printed to PDF by a headless Chromium (Debian's `chromium`, or Chrome),
//! the browser the tests already drive: the HTML is written to a private temporary
//! folder and printed from there, A4 as its CSS asks, without the browser's header and
//! footer.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The browsers tried, in order, on `PATH`.
const BROWSERS: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// How long printing may take before the browser is killed.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The PDF of `html`.
pub fn print(html: &str) -> anyhow::Result<Vec<u8>> {
    let browser = find_browser().context(
        "no headless browser found to print the PDF: install Chromium (Debian: apt-get install \
         chromium; or put chromium, chromium-browser or google-chrome on PATH), or use \
         --format html and print it",
    )?;
    let dir = Scratch::new()?;
    let page = dir.0.join("report.html");
    let pdf = dir.0.join("report.pdf");
    std::fs::write(&page, html).context("cannot write the report's HTML for printing")?;
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.0.join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", browser.display()))?;
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            anyhow::bail!(
                "{} did not print the PDF within {TIMEOUT:?}",
                browser.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    kill_group(child.id()); // helpers it may have left behind
    anyhow::ensure!(
        status.success(),
        "{} exited with {status}",
        browser.display()
    );
    std::fs::read(&pdf).with_context(|| format!("{} wrote no PDF", browser.display()))
}

/// The first of [`BROWSERS`] found on `PATH`.
fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    BROWSERS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Kills the browser's process group (it forks zygote and renderer processes).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// A temporary folder of this process, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("mieruka-report-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.0));
    }
}
