//! Counters for `/api/stats` and `/metrics`: renders and their times, requests, stream connections.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Recent render times kept for percentiles.
const RECENT: usize = 1024;

/// Server-wide counters. Times are summed in microseconds so they fit atomics.
#[derive(Default)]
pub struct Stats {
    pub renders: AtomicU64,
    pub render_errors: AtomicU64,
    pub render_us: AtomicU64,
    pub encode_us: AtomicU64,
    pub prerendered_reads: AtomicU64,
    pub cancelled: AtomicU64,
    pub busy: AtomicU64,
    pub frame_requests: AtomicU64,
    pub not_modified: AtomicU64,
    pub ws_connections: AtomicU64,
    pub ws_connections_total: AtomicU64,
    pub ws_frames_sent: AtomicU64,
    pub ws_bytes_sent: AtomicU64,
    recent_render_ms: Mutex<VecDeque<f64>>,
}

/// Render time percentiles over the recent renders.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct RenderStats {
    pub count: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_render_ms: f64,
    pub mean_encode_ms: f64,
}

impl Stats {
    /// Records one render (reading, posing, drawing) and its encoding.
    pub fn record_render(&self, render_ms: f64, encode_ms: f64) {
        self.renders.fetch_add(1, Ordering::Relaxed);
        self.render_us
            .fetch_add((render_ms * 1000.0) as u64, Ordering::Relaxed);
        self.encode_us
            .fetch_add((encode_ms * 1000.0) as u64, Ordering::Relaxed);
        if let Ok(mut recent) = self.recent_render_ms.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(render_ms + encode_ms);
        }
    }

    pub fn renders(&self) -> RenderStats {
        let count = self.renders.load(Ordering::Relaxed);
        let mut recent: Vec<f64> = self
            .recent_render_ms
            .lock()
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        recent.sort_by(f64::total_cmp);
        let percentile = |p: f64| {
            if recent.is_empty() {
                0.0
            } else {
                let rank = ((p * recent.len() as f64).ceil() as usize).clamp(1, recent.len());
                recent[rank - 1]
            }
        };
        let mean = |us: &AtomicU64| {
            if count == 0 {
                0.0
            } else {
                us.load(Ordering::Relaxed) as f64 / 1000.0 / count as f64
            }
        };
        RenderStats {
            count,
            errors: self.render_errors.load(Ordering::Relaxed),
            p50_ms: percentile(0.5),
            p95_ms: percentile(0.95),
            p99_ms: percentile(0.99),
            mean_render_ms: mean(&self.render_us),
            mean_encode_ms: mean(&self.encode_us),
        }
    }
}

/// Writes Prometheus text exposition lines.
#[derive(Default)]
pub struct Prometheus {
    out: String,
}

impl Prometheus {
    /// One metric without labels.
    pub fn metric(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
            format_value(value)
        ));
        self
    }

    /// One metric with a label per sample.
    pub fn labelled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        samples: &[(String, f64)],
    ) -> &mut Self {
        self.out
            .push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (value_of_label, value) in samples {
            let escaped = value_of_label
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            self.out.push_str(&format!(
                "{name}{{{label}=\"{escaped}\"}} {}\n",
                format_value(*value)
            ));
        }
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_recent_renders() {
        let stats = Stats::default();
        for ms in 1..=100 {
            stats.record_render(f64::from(ms), 0.0);
        }
        let renders = stats.renders();
        assert_eq!(renders.count, 100);
        assert_eq!(renders.p50_ms, 50.0);
        assert_eq!(renders.p99_ms, 99.0);
        assert!((renders.mean_render_ms - 50.5).abs() < 1e-6);
    }

    #[test]
    fn prometheus_text_has_help_type_and_value() {
        let mut text = Prometheus::default();
        text.metric("meshreel_cache_hits_total", "counter", "Cache hits.", 3.0)
            .labelled(
                "meshreel_x",
                "gauge",
                "X.",
                "sequence",
                &[("a\"b".to_string(), 0.5)],
            );
        let text = text.finish();
        assert!(
            text.contains(
                "# TYPE meshreel_cache_hits_total counter\nmeshreel_cache_hits_total 3\n"
            )
        );
        assert!(text.contains("meshreel_x{sequence=\"a\\\"b\"} 0.5\n"));
    }
}
