//! consul's view: the web instances whose health checks pass.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One passing instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    pub address: String,
    pub port: u16,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    service: EntryService,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EntryService {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: u16,
}

/// Parses `GET /v1/health/service/<name>?passing`.
pub fn parse_passing(json: &str) -> anyhow::Result<Vec<Instance>> {
    let entries: Vec<Entry> =
        serde_json::from_str(json).context("reading consul's health answer")?;
    let mut instances: Vec<Instance> = entries
        .into_iter()
        .map(|e| Instance {
            id: e.service.id,
            address: e.service.address,
            port: e.service.port,
        })
        .collect();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(instances)
}

/// Passing instances of `service` from the consul agent at `base` (`http://127.0.0.1:8500`).
pub fn passing(base: &str, service: &str) -> anyhow::Result<Vec<Instance>> {
    let url = format!("{base}/v1/health/service/{service}?passing");
    let text = super::http::get_text(&url, Duration::from_secs(3))
        .with_context(|| format!("asking consul at {url}"))?;
    parse_passing(&text).with_context(|| format!("asking consul at {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_instances_with_address_and_port() {
        let json = r#"[
          {"Node":{"Node":"d9fa33bb2809","Address":"127.0.0.1"},
           "Service":{"ID":"web-9489cd908b98","Service":"web","Tags":[],"Address":"172.20.0.5","Port":5000},
           "Checks":[{"Status":"passing"}]},
          {"Node":{"Node":"d9fa33bb2809"},
           "Service":{"ID":"web-0a1b2c3d4e5f","Service":"web","Address":"172.20.0.6","Port":5000},
           "Checks":[]}
        ]"#;
        let instances = parse_passing(json).unwrap();
        assert_eq!(instances.len(), 2);
        assert_eq!(instances[0].id, "web-0a1b2c3d4e5f");
        assert_eq!(instances[1].address, "172.20.0.5");
        assert_eq!(instances[1].port, 5000);
        assert!(parse_passing("[]").unwrap().is_empty());
    }
}
