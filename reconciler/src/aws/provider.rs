//! The AWS [`NodeProvider`]: workers are EC2 instances found by their tags, launched and
//! terminated through [`nodes`]. Also `fleetform reconcile [--watch]`, and `apply`'s
//! launches, which plan with the same persisted capacity cache as the autoscaler.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use fleetform_runtime::queue::Queue;
use fleetform_runtime::store::Store;
use fleetform_core::spec::{ClusterSpec, Market};
use fleetform_core::task::NodeHeartbeat;
use tokio::sync::OnceCell;

use crate::aws::context::AwsContext;
use crate::aws::names;
use crate::aws::resources::nodes;
use crate::aws::stages::live;
use crate::aws::resources::placement::{self, NetworkInfo};
use crate::autoscaler::decide::plan_launches;
use crate::autoscaler::provider::{observed, ProviderNode};
use crate::autoscaler::run::{load_state, pass, record_launch, save_state, watch};
use crate::autoscaler::{Decision, Launch, LaunchReport, NodeProvider, ObservedNode};
use crate::cluster::Handles;

pub struct AwsProvider {
    ctx: AwsContext,
    store: Store,
    queue: Queue,
    network: OnceCell<NetworkInfo>,
}

impl AwsProvider {
    pub fn new(ctx: AwsContext, store: Store, queue: Queue) -> Self {
        AwsProvider {
            ctx,
            store,
            queue,
            network: OnceCell::new(),
        }
    }

    pub fn context(&self) -> &AwsContext {
        &self.ctx
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The network stack's subnets and groups, read once per provider.
    async fn network(&self) -> Result<&NetworkInfo> {
        self.network
            .get_or_try_init(|| placement::network(&self.ctx))
            .await
    }
}

impl NodeProvider for AwsProvider {
    fn spec(&self) -> &ClusterSpec {
        &self.ctx.spec
    }

    /// Instances by tag (one paginated DescribeInstances). A terminated instance's leases
    /// are given back on the way (`give_back_leases`).
    async fn observe(&self, beats: &HashMap<String, NodeHeartbeat>) -> Result<Vec<ObservedNode>> {
        let now = Utc::now();
        let mut nodes = Vec::new();
        for i in live::instances(&self.ctx, None).await? {
            let Some(t) = &i.node_type else { continue };
            if i.state == "terminated" {
                give_back_leases(&self.store, &self.queue, &i.id, beats).await;
            }
            if *t == self.ctx.spec.head_node_type || !i.is_active() {
                continue;
            }
            let n = ProviderNode {
                id: &i.id,
                node_type: t,
                market: if i.spot {
                    Market::Spot
                } else {
                    Market::OnDemand
                },
                instance_type: &i.instance_type,
                zone: i.zone.clone(),
                launched_at: DateTime::from_timestamp(i.launch_time, 0).unwrap_or(now),
                terminating: matches!(i.state.as_str(), "stopping" | "stopped" | "shutting-down"),
            };
            nodes.push(observed(n, beats));
        }
        Ok(nodes)
    }

    async fn launch(&self, launch: &Launch) -> Result<LaunchReport> {
        let net = self.network().await?;
        nodes::launch(&self.ctx, net, launch).await
    }

    async fn terminate(&self, node_ids: &[String]) -> Result<()> {
        nodes::terminate(&self.ctx, node_ids).await
    }
}

/// A terminated instance's agent is gone for sure (unlike a silent heartbeat, which may be
/// a slow network): the leases its last heartbeat lists go back to the queue now, not
/// when they expire (`fleetform_runtime::leases`). Only while the heartbeat says it held
/// some: a drained agent released its own and wrote a stopped heartbeat.
async fn give_back_leases(
    store: &Store,
    queue: &Queue,
    instance: &str,
    beats: &HashMap<String, NodeHeartbeat>,
) {
    let Some(hb) = beats.get(instance) else {
        return;
    };
    if hb.stopped || hb.leases.is_empty() {
        return;
    }
    match fleetform_runtime::leases::give_back(store, queue, instance, "instance terminated").await {
        Ok(tasks) => tracing::info!(
            instance,
            ?tasks,
            "terminated instance: its tasks are queued again"
        ),
        Err(e) => tracing::warn!(
            instance,
            "terminated instance: its leases could not be given back: {}",
            crate::errors::render(&e)
        ),
    }
}

/// The cluster store `apply` reaches through its own clients (before `Handles` exist).
async fn cluster_store(ctx: &AwsContext) -> Result<Store> {
    let bucket = ctx.spec.storage.bucket.as_deref().unwrap_or_default();
    let prefix = names::store_prefix(&ctx.spec);
    Store::open_with(
        &ctx.sdk,
        &format!("s3://{bucket}/{}", prefix.trim_matches('/')),
    )
    .await
}

/// `apply`'s launch of `count` nodes of a type (the head, `min_workers`): planned like an
/// autoscaler launch (`on_demand_base` first, the offerings the persisted capacity cache
/// allows), executed by the same code, and its capacity failures cached for the
/// autoscaler and `fleetform status`. Returns one report for all of it.
pub async fn apply_launch(
    ctx: &AwsContext,
    node_type: &str,
    count: u32,
    reason: &str,
) -> Result<LaunchReport> {
    let store = cluster_store(ctx).await?;
    let mut persisted = load_state(&store).await;
    let now = Utc::now();
    let on_demand_alive = live::instances(ctx, Some(node_type))
        .await?
        .iter()
        .filter(|i| i.is_active() && !i.spot)
        .count() as u32;
    let mut plan = plan_launches(
        &ctx.spec,
        &persisted.state.capacity,
        node_type,
        count,
        on_demand_alive,
        reason,
        now,
    );
    persisted.state.number_launches(&mut plan.launches);
    let mut report = LaunchReport::default();
    report.messages.extend(plan.lines);
    let net = placement::network(ctx).await?;
    let mut failed = None;
    for l in &plan.launches {
        match nodes::launch(ctx, &net, l).await {
            Ok(r) => {
                record_launch(&mut persisted.state, l, &r, now);
                report.launched.extend(r.launched);
                report.failed.extend(r.failed);
                report.messages.extend(r.messages);
                if let Some(e) = r.error {
                    failed = Some(anyhow::anyhow!("{}", e.message));
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    save_state(&store, &persisted).await;
    match failed {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// `fleetform reconcile [--watch --interval N]` on the aws provider. Once (cron): one
/// pass, exit 1 when it failed (the error is in `fleetform status` too). `--watch`: a
/// pass every `interval` seconds, sooner or later after a failure as the error policy
/// says; no error ends it.
pub async fn reconcile(spec: &ClusterSpec, watch_mode: bool, interval: u64) -> Result<i32> {
    let handles = Handles::of(spec).await?;
    let provider = AwsProvider::new(
        handles.aws_context(spec).await?,
        handles.store().await?,
        handles.queue().await?,
    );
    let print = |d: &Decision| d.explanations.iter().for_each(|line| println!("{line}"));
    if watch_mode {
        watch(
            &provider,
            provider.store(),
            Duration::from_secs(interval.max(1)),
            print,
        )
        .await;
        return Ok(0); // not reached: the watch never ends
    }
    let mut persisted = load_state(provider.store()).await;
    let p = pass(&provider, provider.store(), &mut persisted).await;
    if let Some(d) = &p.decision {
        print(d);
    }
    match p.error {
        Some(e) => {
            eprintln!("fleetform: the reconcile round failed: {e}");
            Ok(1)
        }
        None => Ok(0),
    }
}
