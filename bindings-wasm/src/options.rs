//! The options of `new Client(url, opts)`, as the page gives them (camelCase
//! JSON), turned into the engine's `ClientConfig`.

use livegate_core::client::{Backoff, ClientConfig, TransportKind};
use livegate_core::Encoding;
use serde::Deserialize;

/// Every field is optional; a missing one keeps the engine's default.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    pub transports: Option<Vec<String>>,
    pub encoding: Option<String>,
    pub backoff_min_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub heartbeat_margin_ms: Option<u64>,
    pub poll_timeout_ms: Option<u64>,
    pub transport_retry_ms: Option<u64>,
    pub upgrade_probe_ms: Option<u64>,
    pub offline_queue: Option<usize>,
    pub token: Option<String>,
    pub api_key: Option<String>,
}

/// Reads the options' JSON; every mistake is a sentence for the page.
pub fn parse(json: &str) -> Result<ClientConfig, String> {
    let o: Options = serde_json::from_str(json).map_err(|e| format!("bad options: {e}"))?;
    let mut cfg = ClientConfig::default();
    if let Some(names) = o.transports {
        let mut kinds = Vec::new();
        for n in &names {
            let k = TransportKind::parse(n).ok_or_else(|| {
                format!("bad options: unknown transport {n:?} (use wt, ws, sse, poll)")
            })?;
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        if kinds.is_empty() {
            return Err("bad options: transports is empty".into());
        }
        cfg.transports = kinds;
    }
    if let Some(e) = o.encoding {
        cfg.encoding = match e.as_str() {
            "json" => Encoding::Json,
            "msgpack" => Encoding::Msgpack,
            _ => {
                return Err(format!(
                    "bad options: unknown encoding {e:?} (use json, msgpack)"
                ))
            }
        };
    }
    let min = o.backoff_min_ms.unwrap_or(cfg.backoff.min_ms);
    let max = o.backoff_max_ms.unwrap_or(cfg.backoff.max_ms);
    if min == 0 || max < min {
        return Err(format!(
            "bad options: backoff needs 0 < backoffMinMs <= backoffMaxMs (got {min} and {max})"
        ));
    }
    cfg.backoff = Backoff {
        min_ms: min,
        max_ms: max,
    };
    let positive = |name: &str, v: Option<u64>, slot: &mut u64| -> Result<(), String> {
        match v {
            Some(0) => Err(format!("bad options: {name} must be positive")),
            Some(v) => {
                *slot = v;
                Ok(())
            }
            None => Ok(()),
        }
    };
    positive(
        "connectTimeoutMs",
        o.connect_timeout_ms,
        &mut cfg.connect_timeout_ms,
    )?;
    positive("pollTimeoutMs", o.poll_timeout_ms, &mut cfg.poll_timeout_ms)?;
    positive(
        "upgradeProbeMs",
        o.upgrade_probe_ms,
        &mut cfg.upgrade_probe_ms,
    )?;
    if let Some(v) = o.heartbeat_margin_ms {
        cfg.heartbeat_margin_ms = v;
    }
    if let Some(v) = o.transport_retry_ms {
        cfg.transport_retry_ms = v;
    }
    if let Some(v) = o.offline_queue {
        cfg.offline_queue = v;
    }
    cfg.token = o.token;
    cfg.api_key = o.api_key;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let cfg = parse("{}").unwrap();
        assert_eq!(cfg.transports.len(), 4);
        let cfg = parse(r#"{"transports":["sse","ws","sse"],"encoding":"json","backoffMinMs":10}"#)
            .unwrap();
        assert_eq!(
            cfg.transports,
            vec![TransportKind::Sse, TransportKind::WebSocket]
        );
        assert_eq!(cfg.encoding, Encoding::Json);
        assert_eq!(cfg.backoff.min_ms, 10);
    }

    #[test]
    fn mistakes_are_sentences() {
        for (json, needle) in [
            (r#"{"transports":["udp"]}"#, "unknown transport"),
            (r#"{"transports":[]}"#, "empty"),
            (r#"{"encoding":"xml"}"#, "unknown encoding"),
            (r#"{"backoffMinMs":0}"#, "backoff"),
            (r#"{"connectTimeoutMs":0}"#, "connectTimeoutMs"),
            (r#"{"trasnports":["ws"]}"#, "unknown field"),
            ("[", "bad options"),
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
