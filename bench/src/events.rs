//! The synthetic load of the benchmarks: a realistic mix of FY2026 certificate and
//! application events with unique ids (increasing, or in no order like UUIDs), the plan
//! that takes them, and this process's memory.

/// "Now" for the benches: after every synthetic event (they lie in FY2026, April to
/// December), so the edge's time window takes them whatever the wall clock says.
pub const BENCH_NOW: mieruka_ingest::Timestamp =
    mieruka_ingest::Timestamp::from_unix_seconds(1_798_729_200); // 2027-01-01T00:00:00+09:00

/// The Ome plan, taking events as of [`BENCH_NOW`].
pub fn bench_plan() -> anyhow::Result<mieruka_aggregator::Plan> {
    let mut plan = mieruka_aggregator::Plan::ome()?;
    let window = mieruka_ingest::TimeWindow {
        now: Some(BENCH_NOW),
        ..*plan.schema.window()
    };
    plan.schema.set_window(window);
    Ok(plan)
}

/// One synthetic event, ~250 bytes, with a unique id; a realistic mix of certificate
/// channels and applications over FY2026.
pub fn event(n: u64) -> String {
    let channels = ["konbini", "counter", "mail", "online", "konbini"];
    let certs = ["juminhyo", "inkan", "koseki", "tax", "other"];
    let month = 4 + (n / 1000) % 9;
    let day = 1 + (n / 37) % 28;
    let (h, m, s) = (8 + n % 10, (n / 10) % 60, (n / 600) % 60);
    let at = format!("2026-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}+09:00");
    if n % 3 == 2 {
        format!(
            r#"{{"event_id":"portal-{n:010}","source":"portal","type":"application.submitted","occurred_at":"{at}","data":{{"procedure":"proc-{:03}","channel":"{}","count":1}}}}"#,
            n % 300,
            ["online", "counter", "mail"][(n % 3) as usize]
        )
    } else {
        format!(
            r#"{{"event_id":"konbini-{n:010}","source":"konbini","type":"certificate.issued","occurred_at":"{at}","data":{{"channel":"{}","certificate":"{}","count":{}}}}}"#,
            channels[(n % 5) as usize],
            certs[(n / 5 % 5) as usize],
            1 + n % 2
        )
    }
}

/// [`event`] with an id in no order (a bijective mix of `n`, so still unique), like a
/// UUID: such ids land anywhere in the event log's key index, not at its end. Written
/// with the letters a–p, one per 4 bits: a run of 12 digits could pass the
/// personal-number check and be rejected, as docs/architecture.md intends.
pub fn event_with_random_id(n: u64) -> String {
    let mut x = n;
    // splitmix64's finalizer: a bijection on u64.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let id: String = (0..16)
        .rev()
        .map(|i| char::from(b'a' + ((x >> (4 * i)) & 0xf) as u8))
        .collect();
    event(n).replacen(&format!("-{n:010}\""), &format!("-{id}\""), 1)
}

/// The replay bench's load: [`event`], but every fourth event a `telework.day` whose
/// `staff` is a pseudonymous id of its own, so the distinct measure `telework_staff`
/// holds a quarter of the events as distinct values (2.5 million in 10 million events):
/// the high-cardinality set a replay must keep out of memory.
pub fn event_with_distinct(n: u64) -> String {
    if n % 4 != 3 {
        return event(n);
    }
    let month = 4 + (n / 1000) % 9;
    let day = 1 + (n / 37) % 28;
    let (h, m) = (8 + n % 10, (n / 10) % 60);
    // Hex: at most 16 digits in a run of letters and digits, but a personal number is a
    // run of 12 decimal digits with nothing else: `n` < 16^11 keeps any run shorter.
    format!(
        r#"{{"event_id":"hr-{n:010x}","source":"hr","type":"telework.day","occurred_at":"2026-{month:02}-{day:02}T{h:02}:{m:02}:00+09:00","data":{{"staff":"stf-{n:x}"}}}}"#
    )
}

/// CPU seconds (user + system) used so far by process `pid` (`self` for this one), from
/// `/proc/PID/stat` (Linux, 100 ticks a second); `None` if it cannot be read.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Peak and current resident set size of this process, in MiB (Linux).
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_unique_out_of_order_and_change_nothing_else() {
        let ids: Vec<String> = (0..2_000)
            .map(|n| {
                let e: serde_json::Value = serde_json::from_str(&event_with_random_id(n))
                    .unwrap_or_else(|err| panic!("event {n}: {err}"));
                let plain: serde_json::Value =
                    serde_json::from_str(&event(n)).unwrap_or_else(|err| panic!("{err}"));
                for field in ["source", "type", "occurred_at", "data"] {
                    assert_eq!(e[field], plain[field], "event {n}, {field}");
                }
                assert_ne!(e["event_id"], plain["event_id"]);
                let id = e["event_id"].as_str().unwrap_or_default();
                assert!(!id.contains(|c: char| c.is_ascii_digit()), "{id}");
                e["event_id"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let mut sorted = ids.clone();
        sorted.sort();
        assert_ne!(sorted, ids, "ids in no order");
    }
}
