//! Access to `POST /v1/events`, counted: every request refused whole, by reason and
//! token, so a line system whose token was rotated (401), or that sends the wrong
//! content type (415) or too much at once (413), shows on a dashboard and in an alert
//! instead of only in its own logs.
//!
//! Label values come from the receiver's closed list of reasons and from the configured
//! token names (`unknown` when no token matched); never the presented secret.

use std::collections::BTreeSet;
use std::sync::Arc;

use mieruka_ingest::http::{
    OnRefused, Refusal, AUTH_FAILURE_REASONS, REFUSAL_REASONS, UNKNOWN_TOKEN,
};
use prometheus::{IntCounterVec, Opts, Registry};

/// The counters of refused requests, in the health registry.
#[derive(Clone, Debug)]
pub struct Access {
    /// Every request refused whole (400, 401, 408, 413, 415), by reason and token.
    refused: IntCounterVec,
    /// The 401s among them: no token matched (the name issue 17's key management keeps).
    auth_failures: IntCounterVec,
    /// Configured token names: the only values `token` takes besides `unknown`.
    tokens: Arc<BTreeSet<String>>,
}

impl Access {
    /// Registers the counters in `registry`, every series of the configured `tokens`
    /// at 0 (so rates and alerts see the first refusal).
    pub fn register<S: AsRef<str>>(registry: &Registry, tokens: &[S]) -> prometheus::Result<Self> {
        let refused = IntCounterVec::new(
            Opts::new(
                "mieruka_http_refused_total",
                "Requests to /v1/events refused whole (400, 401, 408, 413, 415), by reason and the configured name of the token presented (unknown when none matched).",
            ),
            &["reason", "token"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "mieruka_auth_failures_total",
                "Requests to /v1/events refused 401 (missing_token, unknown_token); token is unknown, since none matched.",
            ),
            &["token", "reason"],
        )?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        let tokens: BTreeSet<String> = tokens.iter().map(|t| t.as_ref().to_owned()).collect();
        for reason in AUTH_FAILURE_REASONS {
            refused.get_metric_with_label_values(&[reason, UNKNOWN_TOKEN])?;
            auth_failures.get_metric_with_label_values(&[UNKNOWN_TOKEN, reason])?;
        }
        let after_auth = REFUSAL_REASONS
            .iter()
            .filter(|r| !AUTH_FAILURE_REASONS.contains(r));
        for reason in after_auth {
            for token in &tokens {
                refused.get_metric_with_label_values(&[reason, token.as_str()])?;
            }
        }
        Ok(Access {
            refused,
            auth_failures,
            tokens: Arc::new(tokens),
        })
    }

    /// Counts one refused request.
    pub fn count(&self, r: &Refusal<'_>) {
        let token = self
            .tokens
            .get(r.token)
            .map_or(UNKNOWN_TOKEN, String::as_str);
        self.refused.with_label_values(&[r.reason, token]).inc();
        if AUTH_FAILURE_REASONS.contains(&r.reason) {
            self.auth_failures
                .with_label_values(&[token, r.reason])
                .inc();
        }
    }

    /// The receiver's hook: counts each refusal.
    pub fn on_refused(&self) -> OnRefused {
        let access = self.clone();
        Arc::new(move |r: &Refusal<'_>| access.count(r))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_refusal_counts_under_its_token_name_and_an_unmatched_one_under_unknown() {
        let registry = Registry::new();
        let access = Access::register(&registry, &["konbini"]).unwrap();
        let refusal = |status, reason, token| Refusal {
            status,
            reason,
            token,
            peer: None,
        };
        (access.on_refused())(&refusal(415, "content_type", "konbini"));
        access.count(&refusal(401, "unknown_token", UNKNOWN_TOKEN));
        // A name that is not configured cannot become a label value.
        access.count(&refusal(413, "too_large", "not-configured"));
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .unwrap();
        for line in [
            r#"mieruka_http_refused_total{reason="content_type",token="konbini"} 1"#,
            r#"mieruka_http_refused_total{reason="unknown_token",token="unknown"} 1"#,
            r#"mieruka_http_refused_total{reason="too_large",token="unknown"} 1"#,
            r#"mieruka_http_refused_total{reason="timeout",token="konbini"} 0"#,
            r#"mieruka_auth_failures_total{reason="unknown_token",token="unknown"} 1"#,
            r#"mieruka_auth_failures_total{reason="missing_token",token="unknown"} 0"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(!text.contains("not-configured"));
    }
}
