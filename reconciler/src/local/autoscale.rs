//! The local provider under the autoscaler: agents are child processes of `fleetform up`
//! (or `run`), launches are bounded by this machine's cores (min_workers excepted).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use fleetform_core::spec::{ClusterSpec, Market};
use fleetform_core::task::NodeHeartbeat;

use super::{local_resources, LocalCluster};
use crate::autoscaler::provider::{observed, LaunchedNode, ProviderNode};
use crate::autoscaler::run::{watch, LOCAL_ROUND};
use crate::autoscaler::{Decision, Launch, LaunchReport, NodeProvider, ObservedNode};

pub struct LocalProvider {
    cluster: Arc<LocalCluster>,
    /// The spec the rounds plan with: the slots agents really get.
    spec: ClusterSpec,
    cores: usize,
}

impl LocalProvider {
    pub fn new(cluster: Arc<LocalCluster>) -> Self {
        let spec = planning_spec(cluster.spec());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        LocalProvider {
            cluster,
            spec,
            cores,
        }
    }
}

/// The spec the local round plans with: the slots agents really get (a type without CPU
/// shares the cores). The plan itself stays the spec's (what AWS would launch); launches
/// this machine cannot host are held by [`LocalProvider::admit`], and the reasons say so.
fn planning_spec(spec: &ClusterSpec) -> ClusterSpec {
    let mut spec = spec.clone();
    let worker_names: Vec<String> = spec.worker_types().map(|(n, _)| n.clone()).collect();
    for name in worker_names {
        let t = spec
            .available_node_types
            .get_mut(&name)
            .expect("listed above");
        t.resources = local_resources(&t.resources, t.min_workers.max(1));
    }
    spec
}

impl NodeProvider for LocalProvider {
    fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    async fn observe(&self, beats: &HashMap<String, NodeHeartbeat>) -> Result<Vec<ObservedNode>> {
        let agents = self.cluster.agents();
        Ok(agents
            .iter()
            .map(|a| observed(provider_node(a), beats))
            .collect())
    }

    /// The agents' slots together never exceed the machine's cores: launches beyond are
    /// held, and the decision's lines say so.
    fn admit(&self, decision: &mut Decision) -> bool {
        let cores = self.cores;
        let agents = self.cluster.agents();
        let mut used: usize = agents.iter().map(|a| a.slots).sum();
        let mut held: Vec<(String, usize)> = Vec::new();
        let mut rewritten: Vec<(String, String)> = Vec::new();
        for l in decision.launches.iter_mut() {
            let per = self.spec.available_node_types[&l.node_type]
                .resources
                .cpu()
                .max(1.0) as usize;
            let n = l.count.min((cores.saturating_sub(used) / per) as u32);
            if n < l.count {
                let before = l.to_string();
                let note = format!(
                    "{} of {} wanted: this machine has {cores} cores and agents use {used} slots",
                    n, l.count
                );
                l.reason = format!("{}; {note}", l.reason);
                l.count = n;
                rewritten.push((
                    before,
                    if n > 0 {
                        l.to_string()
                    } else {
                        format!("hold {}: {note}", l.node_type)
                    },
                ));
                held.push((
                    l.node_type.clone(),
                    agents.iter().filter(|a| a.node_type == l.node_type).count() + n as usize,
                ));
            }
            used += n as usize * per;
        }
        if rewritten.is_empty() {
            return false;
        }
        name_the_machine(&mut decision.explanations, &held, cores);
        // What is not launched is not reported (or remembered) as launched.
        decision.launches.retain(|l| l.count > 0);
        for line in decision.explanations.iter_mut() {
            if let Some((_, after)) = rewritten.iter().find(|(before, _)| before == line) {
                *line = after.clone();
            }
        }
        true
    }

    async fn launch(&self, launch: &Launch) -> Result<LaunchReport> {
        let ids = self.cluster.launch(&launch.node_type, launch.count)?;
        let launched = ids
            .into_iter()
            .map(|id| LaunchedNode {
                id,
                market: Market::OnDemand,
                instance_type: "local".into(),
                zone: None,
            })
            .collect();
        Ok(LaunchReport {
            launched,
            ..Default::default()
        })
    }

    /// Every node is tried; the first error is returned after the others.
    async fn terminate(&self, node_ids: &[String]) -> Result<()> {
        let results: Vec<Result<()>> = node_ids
            .iter()
            .map(|id| self.cluster.terminate(id))
            .collect();
        results.into_iter().collect()
    }
}

fn provider_node(a: &super::LocalAgent) -> ProviderNode<'_> {
    ProviderNode {
        id: &a.node_id,
        node_type: &a.node_type,
        market: Market::OnDemand,
        instance_type: "local",
        zone: None,
        launched_at: a.launched_at,
        terminating: false,
    }
}

/// A type whose launches the machine held: the plan's "tasks wait: T is at max_workers"
/// is true of the plan, but what holds those tasks now is the cores (otherwise a user
/// reads "wait: worker is at max_workers 4" beside 2 running agents on a 2-core machine).
fn name_the_machine(lines: &mut [String], held: &[(String, usize)], cores: usize) {
    for (node_type, agents) in held {
        let at_max = format!("{node_type} is at max_workers");
        for line in lines
            .iter_mut()
            .filter(|l| l.contains(" wait: ") && l.contains(&at_max))
        {
            line.push_str(&format!(
                "; this machine's {cores} cores hold {node_type} at {agents} agents"
            ));
        }
    }
}

/// The autoscaler inside `fleetform up` (and `run`): rounds every [`LOCAL_ROUND`].
pub async fn autoscale(cluster: Arc<LocalCluster>) {
    let store = match cluster.handles().store().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleetform: autoscaler disabled: {}", crate::errors::render(&e));
            return;
        }
    };
    let provider = LocalProvider::new(cluster);
    tokio::time::sleep(LOCAL_ROUND).await;
    let print = |d: &Decision| {
        d.decision_lines()
            .iter()
            .for_each(|line| println!("autoscaler: {line}"))
    };
    watch(&provider, &store, LOCAL_ROUND, print).await;
}
