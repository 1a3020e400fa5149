//! `mieruka rules` and `mieruka dashboards`: the Prometheus rules and Grafana dashboards
//! generated from the plan (deploy/ holds the generated files; a test keeps them equal).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::{Config, Resolved};

/// Writes the recording and alerting rules (feed cadences from the config's `[sources]`
/// and `[rules]`, thresholds from `[rules]`) to `out`, or standard output.
pub fn rules(cfg: &Config, settings: &Resolved, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let opts = cfg.rules_options()?;
    let text = mieruka_exporter::rules::rules_yaml(&settings.plan, &opts);
    match out {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes one JSON file per dashboard into `out`.
pub fn dashboards(settings: &Resolved, out: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, json) in mieruka_exporter::dashboards::dashboards(&settings.plan) {
        let path = out.join(name);
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
