//! How long `plan` takes and how many AWS calls it makes, for clusters of 10 and 100
//! workers on a moto server (docs/benchmarks.md, "`plan` on moto"; not a test). Describe
//! calls must not grow with the number of nodes, apart from pagination.
//!
//!     cargo bench -p fleetform --bench plan            (release build of the SDK: slow to compile)
//!     cargo bench -p fleetform --bench plan --profile dev
//!
//! Counting is an SDK interceptor on every client of the context: one count per HTTP
//! attempt, by `service:Operation`. S3 goes through object_store (not the SDK) and is
//! counted apart: one bucket probe plus one small GET per store artifact.

#[path = "../../tests/e2e/elf.rs"]
mod elf;
#[path = "../../tests/e2e/moto.rs"]
mod moto;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use fleetform::aws::commands::gather;
use fleetform::aws::stages::diff::diff;
use fleetform::aws::stages::state::Purpose;
use fleetform::aws::{AwsContext, ContextOptions};
use fleetform::binaries::BinaryArgs;
use fleetform_core::instance::Arch;
use fleetform_core::ClusterSpec;

/// Plans per cluster size; the figures are per plan.
const ROUNDS: u32 = 5;

#[derive(Debug, Clone, Default)]
struct CallCounter(Arc<Mutex<BTreeMap<String, u32>>>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }
    fn read_before_attempt(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            *self.0.lock().unwrap().entry(format!("{}:{}", m.service(), m.name())).or_default() += 1;
        }
        Ok(())
    }
}

fn spec(dir: &Path, workers: u32) -> std::path::PathBuf {
    let spec = dir.join("cluster.yaml");
    std::fs::write(
        &spec,
        format!(
            "cluster_name: bench{workers}\nprovider: {{type: aws, region: us-west-2, availability_zones: [us-west-2a, us-west-2b]}}\n\
             storage: {{bucket: fleetform-bench{workers}, prefix: b/}}\nmax_workers: {workers}\nhead_node_type: head\n\
             available_node_types:\n  head:\n    resources: {{CPU: 0}}\n    node_config: {{instance_types: [m7i.xlarge]}}\n\
             \x20 worker:\n    resources: {{CPU: 8, Intel: 1}}\n    min_workers: {workers}\n    max_workers: {workers}\n\
             \x20   node_config: {{instance_types: [r7i.2xlarge, m7i.2xlarge], market: spot}}\n"
        ),
    )
    .unwrap();
    let dist = dir.join("dist/x86_64");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("fleetform-agent"), elf::fake_elf(Arch::X86_64, b"agent")).unwrap();
    std::fs::write(dist.join("fleetform"), elf::fake_elf(Arch::X86_64, b"fleetform")).unwrap();
    spec
}

struct Figures {
    workers: u32,
    apply: Duration,
    plan: Duration,
    calls: BTreeMap<String, u32>,
}

fn measure(moto: &moto::Moto, rt: &tokio::runtime::Runtime, workers: u32) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = spec(dir.path(), workers);
    let t = Instant::now();
    let out = moto.fleetform(&["apply", "--yes", "-f", spec_path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let apply = t.elapsed();
    rt.block_on(async {
        let counter = CallCounter::default();
        let spec = ClusterSpec::load(&spec_path).unwrap();
        let options = ContextOptions { interceptors: vec![SharedInterceptor::new(counter.clone())] };
        let ctx = AwsContext::connect_with(&spec, moto.sdk_config().await, options).await.unwrap();
        counter.0.lock().unwrap().clear();
        let t = Instant::now();
        for _ in 0..ROUNDS {
            let (desired, live) = gather(&ctx, &spec_path, &BinaryArgs::default(), Purpose::Apply, false).await.unwrap();
            assert_eq!(live.instances.len() as u32, workers + 1);
            let plan = diff(&desired, &live);
            assert!(plan.is_empty(), "{}", plan.render());
        }
        let plan = t.elapsed() / ROUNDS;
        let calls = counter.0.lock().unwrap().iter().map(|(k, v)| (k.clone(), v / ROUNDS)).collect();
        Figures { workers, apply, plan, calls }
    })
}

fn main() {
    let moto = moto::Moto::start();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let runs: Vec<Figures> = [10, 100].into_iter().map(|w| measure(&moto, &rt, w)).collect();
    println!("fleetform plan on moto ({ROUNDS} plans per size, figures per plan)\n");
    println!("{:<45} {:>12} {:>12}", "", "10 workers", "100 workers");
    println!("{:<45} {:>11.2}s {:>11.2}s", "apply (CLI, from nothing)", runs[0].apply.as_secs_f64(), runs[1].apply.as_secs_f64());
    println!("{:<45} {:>10.0}ms {:>10.0}ms", "plan (observe + diff, no changes)", runs[0].plan.as_secs_f64() * 1e3, runs[1].plan.as_secs_f64() * 1e3);
    let ops: std::collections::BTreeSet<&String> = runs.iter().flat_map(|r| r.calls.keys()).collect();
    for op in ops {
        let n = |r: &Figures| r.calls.get(op).copied().unwrap_or(0);
        println!("{:<45} {:>12} {:>12}", op, n(&runs[0]), n(&runs[1]));
    }
    let total = |r: &Figures| r.calls.values().sum::<u32>();
    let describes = |r: &Figures| r.calls.iter().filter(|(k, _)| k.contains(":Describe") || k.contains(":List") || k.contains(":Get")).map(|(_, v)| v).sum::<u32>();
    println!("{:<45} {:>12} {:>12}", "total SDK calls", total(&runs[0]), total(&runs[1]));
    println!("{:<45} {:>12} {:>12}", "describe/list/get calls", describes(&runs[0]), describes(&runs[1]));
    println!("(+ S3 via object_store, not counted above: 1 bucket probe + 1 GET per store artifact)");
    assert_eq!(describes(&runs[0]), describes(&runs[1]), "describe calls grew with the number of nodes");
    println!("\ndescribe calls do not grow with the number of nodes: {} for {} workers, {} for {}", describes(&runs[0]), runs[0].workers, describes(&runs[1]), runs[1].workers);
}
