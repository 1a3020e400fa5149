//! `mieruka token new NAME`: a fresh key for a line system. The token is printed once
//! and kept nowhere; the config gets only its SHA-256 (`token_sha256`).

use std::process::ExitCode;

use anyhow::Context;
use mieruka_ingest::http::keys::{secret_text, token_sha256};

/// Random bytes in a token: 256 bits, twice the 128 a token needs at least, so guessing
/// one is out of reach however many requests are made.
pub const TOKEN_BYTES: usize = 32;

/// Prints a fresh token and the `[[tokens]]` entry that takes it (to standard output,
/// for a person to copy; nothing is written anywhere).
pub fn new(
    name: &str,
    expires: Option<&str>,
    sources: &[String],
    types: &[String],
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!name.trim().is_empty(), "a token needs a name");
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the operating system gave no random bytes")?;
    let secret = secret_text(&bytes);
    print!("{}", entry(name, &secret, expires, sources, types));
    Ok(ExitCode::SUCCESS)
}

/// What `token new` prints: the token for the line system, then the config entry.
fn entry(
    name: &str,
    secret: &str,
    expires: Option<&str>,
    sources: &[String],
    types: &[String],
) -> String {
    let default_sources = [name.to_owned()];
    let sources = if sources.is_empty() {
        &default_sources[..]
    } else {
        sources
    };
    let list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|s| toml_string(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut out = format!(
        "# The token, for the line system {name:?} only (shown once, kept nowhere):\n\
         {secret}\n\
         # The entry for the config's [[tokens]] (it holds only the token's SHA-256):\n\
         [[tokens]]\n\
         name = {}\n\
         token_sha256 = \"{}\"\n",
        toml_string(name),
        token_sha256(secret),
    );
    if let Some(at) = expires {
        out.push_str(&format!("expires = {}\n", toml_string(at)));
    }
    out.push_str(&format!("sources = {}\n", list(sources)));
    if !types.is_empty() {
        out.push_str(&format!("types = {}\n", list(types)));
    }
    out
}

/// `s` as a TOML basic string (JSON's string escapes are all TOML's too).
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use mieruka_ingest::Timestamp;

    use super::*;

    #[test]
    fn the_entry_parses_as_a_token_whose_key_is_the_printed_token() {
        let at = Some("2027-03-31T23:59:59+09:00");
        let text = entry(
            "konbini \"east\"",
            "tok",
            at,
            &[],
            &["certificate.issued".into()],
        );
        assert!(
            text.contains("\nexpires = \"2027-03-31T23:59:59+09:00\"\n"),
            "{text}"
        );
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        assert_eq!(lines.next(), Some("tok"));
        let toml_text: String = lines.map(|l| format!("{l}\n")).collect();
        let cfg: crate::config::Config = toml::from_str(&toml_text).unwrap();
        let ring = cfg.key_ring().unwrap();
        let now = Timestamp::parse_rfc3339("2026-10-01T00:00:00+09:00").unwrap();
        match ring.find("tok", now) {
            mieruka_ingest::http::keys::Lookup::Valid(t) => {
                assert_eq!(t.name, "konbini \"east\"");
                assert_eq!(t.sources, ["konbini \"east\""]);
                assert_eq!(t.types, ["certificate.issued"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !toml_text.contains("tok\n"),
            "the token itself is not in the entry"
        );
    }
}
