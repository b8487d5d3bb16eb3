//! The built-in publisher of machine and gateway figures on `$sys.*`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use livegate_core::Payload;
use serde_json::{json, Value};
use sysinfo::{Disks, Networks, System};

use crate::App;

/// Topics this publisher writes.
pub const TOPICS: [&str; 5] = [
    "$sys.cpu",
    "$sys.memory",
    "$sys.disk",
    "$sys.network",
    "$sys.gateway",
];

struct Sampler {
    system: System,
    disks: Disks,
    networks: Networks,
    last_network: Instant,
}

impl Sampler {
    fn new() -> Self {
        let mut system = System::new();
        system.refresh_cpu_usage();
        Self {
            system,
            disks: Disks::new_with_refreshed_list(),
            networks: Networks::new_with_refreshed_list(),
            last_network: Instant::now(),
        }
    }

    /// One reading of every `$sys` topic but `$sys.gateway`.
    fn sample(&mut self) -> Vec<(&'static str, Value)> {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.disks.refresh(true);
        self.networks.refresh(true);
        let secs = self.last_network.elapsed().as_secs_f64().max(0.001);
        self.last_network = Instant::now();

        let load = System::load_average();
        let cpu = json!({
            "usage_percent": round1(f64::from(self.system.global_cpu_usage())),
            "cores": self.system.cpus().iter().map(|c| round1(f64::from(c.cpu_usage()))).collect::<Vec<_>>(),
            "load_avg": [load.one, load.five, load.fifteen],
        });
        let s = &self.system;
        let memory = json!({
            "total_bytes": s.total_memory(),
            "used_bytes": s.used_memory(),
            "available_bytes": s.available_memory(),
            "swap_total_bytes": s.total_swap(),
            "swap_used_bytes": s.used_swap(),
        });
        let disks: Vec<Value> = self
            .disks
            .list()
            .iter()
            .map(|d| {
                json!({
                    "mount": d.mount_point().to_string_lossy(),
                    "total_bytes": d.total_space(),
                    "available_bytes": d.available_space(),
                })
            })
            .collect();
        let (mut rx, mut tx) = (0.0, 0.0);
        let interfaces: Vec<Value> = self
            .networks
            .iter()
            .map(|(name, data)| {
                let (r, t) = (
                    data.received() as f64 / secs,
                    data.transmitted() as f64 / secs,
                );
                rx += r;
                tx += t;
                json!({"name": name, "rx_bytes_per_sec": r.round(), "tx_bytes_per_sec": t.round()})
            })
            .collect();
        let network = json!({
            "rx_bytes_per_sec": rx.round(),
            "tx_bytes_per_sec": tx.round(),
            "interfaces": interfaces,
        });
        vec![
            ("$sys.cpu", cpu),
            ("$sys.memory", memory),
            ("$sys.disk", json!({ "disks": disks })),
            ("$sys.network", network),
        ]
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Publishes every `interval` until the task is dropped.
pub async fn run(app: Arc<App>, interval: Duration) {
    let sampler = tokio::task::spawn_blocking(Sampler::new).await;
    let Ok(mut sampler) = sampler else {
        tracing::warn!("system publisher could not start");
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        // Reading /proc blocks; keep it off the async workers.
        let Ok((s, readings)) = tokio::task::spawn_blocking(move || {
            let readings = sampler.sample();
            (sampler, readings)
        })
        .await
        else {
            tracing::warn!("system sampling failed; system publisher stops");
            return;
        };
        sampler = s;
        let gateway = serde_json::to_value(app.service.stats()).unwrap_or(Value::Null);
        for (topic, value) in readings.into_iter().chain([("$sys.gateway", gateway)]) {
            if let Err(e) = app
                .service
                .publish_as_gateway(topic, Payload::from_json_value(&value))
                .await
            {
                tracing::warn!(topic, error = %e, "system publish failed");
            }
        }
    }
}
