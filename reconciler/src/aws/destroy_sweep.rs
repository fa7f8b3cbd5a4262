//! After a destroy: look again, by tag, for anything of the cluster that is still there
//! (other than what the destroy keeps on purpose), so nothing is left untracked.

use std::collections::BTreeMap;

use anyhow::Result;

use super::context::AwsContext;
use super::model::Desired;
use super::observe;

pub async fn leftovers(ctx: &AwsContext, desired: &Desired) -> Result<BTreeMap<String, Vec<String>>> {
    let (stacks, instances, lts, queues) =
        tokio::try_join!(observe::stacks(ctx), observe::instances(ctx, None), observe::launch_templates(ctx), observe::queues(ctx))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |k: &str, v: String| out.entry(k.to_string()).or_default().push(v);
    for (kind, s) in &stacks {
        if !desired.retained.contains(kind) {
            add("stacks", format!("{} ({})", s.name, s.status));
        }
    }
    for i in instances.iter().filter(|i| !i.is_gone()) {
        add("instances", format!("{} ({})", i.id, i.state));
    }
    for l in lts.values() {
        add("launch templates", l.name.clone());
    }
    for q in queues.keys() {
        add("queues", q.clone());
    }
    Ok(out)
}
