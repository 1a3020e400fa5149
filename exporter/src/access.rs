//! Access to `POST /v1/events`, counted: every request refused whole, by reason and
//! token, so a line system whose token was rotated (401), or that sends the wrong
//! content type (415) or too much at once (413), shows on a dashboard and in an alert
//! instead of only in its own logs.
//!
//! Label values come from the receiver's closed list of reasons and from the configured
//! token names (`unknown` when no token matched); never the presented secret.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use mieruka_ingest::http::{
    OnRefused, Refusal, AUTH_FAILURE_REASONS, NO_TOKEN_REASONS, REFUSAL_REASONS, UNKNOWN_TOKEN,
};
use prometheus::{IntCounterVec, Opts, Registry};

/// The counters of refused requests, in the health registry.
#[derive(Clone, Debug)]
pub struct Access {
    /// Every request refused whole (400, 401, 408, 413, 415), by reason and token.
    refused: IntCounterVec,
    /// The 401s among them: no token matched, or it expired.
    auth_failures: IntCounterVec,
    /// Configured token names: the only values `token` takes besides `unknown` (a std
    /// lock: nothing awaits while it is held; a reload of the tokens replaces them).
    tokens: Arc<RwLock<BTreeSet<String>>>,
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
                "Requests to /v1/events refused 401: missing_token and unknown_token (token is unknown, since none matched), expired (token names it).",
            ),
            &["token", "reason"],
        )?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        for reason in NO_TOKEN_REASONS {
            refused.get_metric_with_label_values(&[reason, UNKNOWN_TOKEN])?;
            auth_failures.get_metric_with_label_values(&[UNKNOWN_TOKEN, reason])?;
        }
        let access = Access {
            refused,
            auth_failures,
            tokens: Arc::default(),
        };
        access.set_tokens(tokens);
        Ok(access)
    }

    /// Takes `tokens` as the configured names (after a reload), their series at 0. The
    /// series of a name no longer configured stay, with their counts.
    pub fn set_tokens<S: AsRef<str>>(&self, tokens: &[S]) {
        let tokens: BTreeSet<String> = tokens.iter().map(|t| t.as_ref().to_owned()).collect();
        let named = REFUSAL_REASONS
            .iter()
            .filter(|r| !NO_TOKEN_REASONS.contains(r));
        for reason in named {
            for token in &tokens {
                self.refused.with_label_values(&[reason, token.as_str()]);
                if AUTH_FAILURE_REASONS.contains(reason) {
                    self.auth_failures
                        .with_label_values(&[token.as_str(), reason]);
                }
            }
        }
        match self.tokens.write() {
            Ok(mut t) => *t = tokens,
            Err(poisoned) => *poisoned.into_inner() = tokens,
        }
    }

    /// Counts one refused request.
    pub fn count(&self, r: &Refusal<'_>) {
        let known = match self.tokens.read() {
            Ok(t) => t.contains(r.token),
            Err(poisoned) => poisoned.into_inner().contains(r.token),
        };
        let token = if known { r.token } else { UNKNOWN_TOKEN };
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

    /// The registry in the text exposition format.
    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .unwrap();
        text
    }

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
        let text = exposition(&registry);
        for line in [
            r#"mieruka_http_refused_total{reason="content_type",token="konbini"} 1"#,
            r#"mieruka_http_refused_total{reason="unknown_token",token="unknown"} 1"#,
            r#"mieruka_http_refused_total{reason="too_large",token="unknown"} 1"#,
            r#"mieruka_http_refused_total{reason="timeout",token="konbini"} 0"#,
            r#"mieruka_auth_failures_total{reason="unknown_token",token="unknown"} 1"#,
            r#"mieruka_auth_failures_total{reason="missing_token",token="unknown"} 0"#,
            r#"mieruka_auth_failures_total{reason="expired",token="konbini"} 0"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(!text.contains("not-configured"));
    }

    #[test]
    fn a_name_configured_by_a_reload_counts_under_itself() {
        let registry = Registry::new();
        let access = Access::register(&registry, &["konbini"]).unwrap();
        let expired = Refusal {
            status: 401,
            reason: "expired",
            token: "card",
            peer: None,
        };
        access.count(&expired);
        access.set_tokens(&["konbini", "card"]);
        access.count(&expired);
        let text = exposition(&registry);
        for line in [
            r#"mieruka_auth_failures_total{reason="expired",token="unknown"} 1"#,
            r#"mieruka_auth_failures_total{reason="expired",token="card"} 1"#,
            r#"mieruka_http_refused_total{reason="timeout",token="card"} 0"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
