//! Engine throughput: submit → route → dispatch, reconcile of a large firing set, and digest;
//! and the pvc_usage fill prediction.
//! Run with `make bench`; figures go to docs/benchmarks.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use kpulse::alert::{Alert, AlertKey, Finding, Severity};
use kpulse::config::{SecretMap, load};
use kpulse::engine::{Engine, Scope, Settings};
use kpulse::monitors::trend::Series;

const CONFIG: &str = r#"
channels: {ops: {type: log}, oncall: {type: log}, team: {type: log}}
routing:
  default: [ops]
  rules:
    - match: {severity: [critical], namespace: "payments-*"}
      channels: [oncall, ops]
    - match: {namespace_regex: "team-(a|b|c)", kind: Pod}
      channels: [team]
    - match: {labels: {tier: "front*"}}
      channels: [team]
dedupe: {window: 30m, digest: {severities: [info], interval: 15m}}
"#;

fn engine() -> Engine {
    let c = load(CONFIG, &SecretMap::new()).unwrap();
    Engine::new(Settings::from_config(&c).unwrap())
}

fn alert(i: usize, now: Timestamp) -> Alert {
    let ns = ["payments-eu", "team-b", "shop", "kube-system"][i % 4];
    let sev = [Severity::Critical, Severity::Warning, Severity::Info][i % 3];
    Alert::new(
        AlertKey::new(
            "pod_crashes",
            ns,
            "Pod",
            format!("pod-{i}"),
            "CrashLoopBackOff",
        ),
        sev,
        "crashing",
        now,
    )
}

fn bench(c: &mut Criterion) {
    let t0 = Timestamp::from_second(1_800_000_000).unwrap();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.bench_function("submit_one_shot_new_key", |b| {
        let mut e = engine();
        let mut i = 0usize;
        b.iter(|| {
            i += 1;
            let a = alert(i, t0).one_shot();
            e.submit(a, t0 + SignedDuration::from_secs(i as i64))
        })
    });
    g.bench_function("submit_resolvable_still_active", |b| {
        let mut e = engine();
        let a = alert(1, t0);
        e.submit(a.clone(), t0);
        b.iter(|| e.submit(a.clone(), t0))
    });
    for n in [100usize, 1_000, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::new("reconcile_steady_state", n),
            &n,
            |b, &n| {
                let mut e = engine();
                let firing: Vec<Finding> = (0..n).map(|i| Finding::firing(alert(i, t0))).collect();
                e.reconcile("pod_crashes", &Scope::All, firing.clone(), t0);
                b.iter(|| e.reconcile("pod_crashes", &Scope::All, firing.clone(), t0))
            },
        );
        g.bench_with_input(BenchmarkId::new("fire_and_resolve_all", n), &n, |b, &n| {
            let firing: Vec<Finding> = (0..n).map(|i| Finding::firing(alert(i, t0))).collect();
            b.iter(|| {
                let mut e = engine();
                e.reconcile("pod_crashes", &Scope::All, firing.clone(), t0);
                e.reconcile(
                    "pod_crashes",
                    &Scope::All,
                    Vec::new(),
                    t0 + SignedDuration::from_mins(1),
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("snapshot_json", n), &n, |b, &n| {
            let mut e = engine();
            e.reconcile(
                "pod_crashes",
                &Scope::All,
                (0..n).map(|i| Finding::firing(alert(i, t0))).collect(),
                t0,
            );
            b.iter(|| serde_json::to_vec(&e.snapshot()).unwrap().len())
        });
    }
    g.finish();

    // pvc_usage's fill prediction: one reading recorded and one prediction made per claim and
    // scan, with a full 6h window (64 readings) per series.
    let mut g = c.benchmark_group("trend");
    let window = std::time::Duration::from_secs(6 * 3600);
    for n in [1_000usize, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("record_and_predict", n), &n, |b, &n| {
            let mut series: Vec<Series> = vec![Series::default(); n];
            let mut minute = 0i64;
            let read = |series: &mut Vec<Series>, minute: i64| {
                let at = t0 + SignedDuration::from_mins(minute);
                let mut fills = 0;
                for (i, s) in series.iter_mut().enumerate() {
                    s.record(at, 1e12 - (minute as f64) * 1e6 - i as f64, window);
                    fills += usize::from(s.time_to_empty(at, window).is_some());
                }
                fills
            };
            for _ in 0..6 * 60 {
                minute += 1;
                read(&mut series, minute);
            }
            b.iter(|| {
                minute += 1;
                read(&mut series, minute)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
