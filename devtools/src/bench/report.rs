//! The run's figures: one table on stdout, the same as JSON for comparing runs.

use serde_json::{Value, json};

use super::api::ApiRow;
use super::handler::{RouteLatency, Spawn};
use super::limits::Limit;
use super::pipeline::{Pipeline, Single};
use super::rss::Peaks;
use super::{BLOCK_TIME_SECS, BenchArgs, CONFIRMATIONS, ms};

#[derive(Debug, Default)]
pub struct Report {
    pub binaries: String,
    pub cores: usize,
    pub settings: Vec<(String, String)>,
    pub api: Vec<ApiRow>,
    pub limits: Vec<Limit>,
    pub single: Single,
    /// The same single payments with the chain-webhook hint posted at inclusion.
    pub single_webhook: Option<Single>,
    pub pipeline: Option<Pipeline>,
    pub rss: Peaks,
    pub spawn: Option<Spawn>,
    pub routes: Vec<RouteLatency>,
}

impl Report {
    pub fn new(binaries: String, cores: usize, args: &BenchArgs) -> Report {
        Report {
            binaries,
            cores,
            settings: args.settings.clone(),
            ..Report::default()
        }
    }

    /// The slowest limit, the one the pipeline is compared to.
    fn slowest(&self) -> Option<&Limit> {
        self.limits
            .iter()
            .min_by(|a, b| a.per_sec.total_cmp(&b.per_sec))
    }

    pub fn print(&self) {
        println!();
        println!(
            "meshpay bench: {} ({} cores), anvil {} s blocks, {} confirmation(s){}",
            self.binaries,
            self.cores,
            BLOCK_TIME_SECS,
            CONFIRMATIONS,
            self.settings
                .iter()
                .map(|(k, v)| format!(", {k}={v}"))
                .collect::<String>()
        );
        println!();
        println!(
            "{:<16} {:>4} {:>6} {:>6} {:>10} {:>10} {:>10}",
            "API", "c", "n", "errors", "p50 ms", "p99 ms", "req/s"
        );
        for row in &self.api {
            println!(
                "{:<16} {:>4} {:>6} {:>6} {:>10.1} {:>10.1} {:>10.1}",
                row.endpoint,
                row.concurrency,
                row.requests,
                row.errors,
                ms(row.p50),
                ms(row.p99),
                row.per_sec
            );
        }
        println!();
        println!(
            "{:<34} {:>8} {:>10} {:>8}",
            "throughput", "n", "per s", "ratio"
        );
        let slowest = self.slowest().map_or(0.0, |l| l.per_sec);
        let ratio = |per_sec: f64| {
            if slowest > 0.0 {
                format!("{:.3}", per_sec / slowest)
            } else {
                "-".into()
            }
        };
        if let Some(p) = &self.pipeline {
            println!(
                "{:<34} {:>8} {:>10.1} {:>8}",
                format!("pipeline payments (c={})", p.concurrency),
                p.payments,
                p.per_sec,
                ratio(p.per_sec)
            );
        }
        for limit in &self.limits {
            println!(
                "{:<34} {:>8} {:>10.1} {:>8}",
                limit.name,
                limit.ops,
                limit.per_sec,
                ratio(limit.per_sec)
            );
        }
        if let Some(p) = &self.pipeline {
            println!(
                "pipeline created → settled: p50 {:.0} ms, p99 {:.0} ms; wall {:.1} s",
                ms(p.settle_p50),
                ms(p.settle_p99),
                p.wall.as_secs_f64()
            );
        }
        println!();
        let paths = std::iter::once(("polling", &self.single))
            .chain(self.single_webhook.iter().map(|s| ("chain webhook", s)));
        for (path, s) in paths {
            println!(
                "single payment, {path} ({} sequential): authorize → settled p50 {:.0} ms; \
                 overhead on top of {} × {} s: p50 {:.0} ms, p90 {:.0} ms (min {:.0}, max {:.0})",
                s.payments,
                ms(s.total_p50),
                CONFIRMATIONS,
                BLOCK_TIME_SECS,
                ms(s.overhead_p50),
                ms(s.overhead_p90),
                ms(s.overhead_min),
                ms(s.overhead_max)
            );
            println!(
                "  meshpay's own time (without the inclusion wait and confirmations): p50 {:.0} ms, p90 {:.0} ms",
                ms(s.own_p50),
                ms(s.own_p90)
            );
            for (step, p50, p90) in &s.steps {
                println!(
                    "  {step:<28} p50 {:>7.0} ms  p90 {:>7.0} ms",
                    ms(*p50),
                    ms(*p90)
                );
            }
        }
        println!();
        if let Some(spawn) = &self.spawn {
            println!(
                "handler spawn → first 200 ({} runs): p50 {:.1} ms (min {:.1}, max {:.1})",
                spawn.runs,
                ms(spawn.p50),
                ms(spawn.min),
                ms(spawn.max)
            );
        }
        let floor = self.routes.first().map(|r| r.p50);
        for route in &self.routes {
            let over = floor.map_or(0.0, |f| ms(route.p50) - ms(f));
            println!(
                "GET /api/health {:<20} n {:>5}: p50 {:>7.3} ms p99 {:>7.3} ms (+{:.3} ms p50)",
                route.name,
                route.requests,
                ms(route.p50),
                ms(route.p99),
                over
            );
        }
        if self.spawn.is_some() || !self.routes.is_empty() {
            println!();
        }
        for (name, kib) in &self.rss {
            println!(
                "peak RSS {name:<8} {:>8.1} MiB (pipeline phase)",
                *kib as f64 / 1024.0
            );
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "binaries": self.binaries,
            "cores": self.cores,
            "block_time_secs": BLOCK_TIME_SECS,
            "confirmations": CONFIRMATIONS,
            "settings": self.settings.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "api": self.api.iter().map(|r| json!({
                "endpoint": r.endpoint, "concurrency": r.concurrency, "requests": r.requests, "errors": r.errors,
                "p50_ms": ms(r.p50), "p99_ms": ms(r.p99), "per_sec": r.per_sec,
            })).collect::<Vec<_>>(),
            "limits": self.limits.iter().map(|l| json!({
                "name": l.name, "ops": l.ops, "per_sec": l.per_sec,
            })).collect::<Vec<_>>(),
            "pipeline": self.pipeline.as_ref().map(|p| json!({
                "payments": p.payments, "concurrency": p.concurrency,
                "wall_secs": p.wall.as_secs_f64(), "per_sec": p.per_sec,
                "ratio_to_slowest_limit": self.slowest().map(|l| p.per_sec / l.per_sec),
                "settle_p50_ms": ms(p.settle_p50), "settle_p99_ms": ms(p.settle_p99),
            })),
            "single": {
                "payments": self.single.payments,
                "total_p50_ms": ms(self.single.total_p50),
                "overhead_p50_ms": ms(self.single.overhead_p50),
                "overhead_p90_ms": ms(self.single.overhead_p90),
                "own_p50_ms": ms(self.single.own_p50),
                "own_p90_ms": ms(self.single.own_p90),
                "overhead_min_ms": ms(self.single.overhead_min),
                "overhead_max_ms": ms(self.single.overhead_max),
                "steps": self.single.steps.iter().map(|(s, p50, p90)| json!({"step": s, "p50_ms": ms(*p50), "p90_ms": ms(*p90)})).collect::<Vec<_>>(),
            },
            "single_webhook": self.single_webhook.as_ref().map(|s| json!({
                "payments": s.payments,
                "total_p50_ms": ms(s.total_p50),
                "overhead_p50_ms": ms(s.overhead_p50),
                "overhead_p90_ms": ms(s.overhead_p90),
                "own_p50_ms": ms(s.own_p50),
                "own_p90_ms": ms(s.own_p90),
                "overhead_min_ms": ms(s.overhead_min),
                "overhead_max_ms": ms(s.overhead_max),
                "steps": s.steps.iter().map(|(step, p50, p90)| json!({"step": step, "p50_ms": ms(*p50), "p90_ms": ms(*p90)})).collect::<Vec<_>>(),
            })),
            "handler_spawn": self.spawn.as_ref().map(|s| json!({
                "runs": s.runs, "p50_ms": ms(s.p50), "min_ms": ms(s.min), "max_ms": ms(s.max),
            })),
            "health_routes": self.routes.iter().map(|r| json!({
                "route": r.name, "requests": r.requests, "p50_ms": ms(r.p50), "p99_ms": ms(r.p99),
            })).collect::<Vec<_>>(),
            "peak_rss_kib": self.rss,
        })
    }
}
