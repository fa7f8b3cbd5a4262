//! The diff: a pure function from (desired, live) to a plan. No clients, no clock, no
//! I/O, so every rule below is unit-tested with plain data.

use std::collections::BTreeSet;

use crate::aws::stages::state::{Desired, DesiredNodeGroup, Live, LiveInstance, Purpose};
use crate::aws::names::StackKind;
use crate::aws::stages::plan::{Action, Change, Plan, Target};
use crate::aws::stages::stack_diff::diff_templates;

pub fn diff(desired: &Desired, live: &Live) -> Plan {
    let mut plan = Plan {
        cluster: desired.cluster.clone(),
        notes: desired.notes.clone(),
        blockers: desired.blockers.clone(),
        ..Default::default()
    };
    for kind in StackKind::ALL {
        if let Some(ls) = live.stacks.get(&kind) {
            if let Some(b) = stack_blocker(desired, kind, &ls.name, &ls.status, ls.status_reason.as_deref()) {
                plan.blockers.push(b);
            }
        }
    }
    if let Some(b) = network_form_blocker(desired, live) {
        plan.blockers.push(b);
    }
    diff_stacks(desired, live, &mut plan.changes);
    plan.blockers.extend(plan.changes.iter().filter_map(unreplaceable));
    diff_queues(desired, live, &mut plan.changes);
    diff_artifacts(desired, live, &mut plan.changes);
    let lt_states = diff_launch_templates(desired, live, &mut plan.changes);
    diff_nodes(desired, live, &lt_states, &mut plan.changes);
    plan
}

/// A stack state that stops the plan from being applied, as one sentence saying what to do.
fn stack_blocker(desired: &Desired, kind: StackKind, name: &str, status: &str, reason: Option<&str>) -> Option<String> {
    let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
    if status.ends_with("_IN_PROGRESS") {
        return Some(format!(
            "stack {name} is busy ({status}): another apply or destroy may be running; wait for it to finish, then run this again"
        ));
    }
    if desired.purpose == Purpose::Destroy || desired.stack(kind).is_none() {
        // Deleting works from every settled state.
        return None;
    }
    match status {
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" => Some(format!(
            "stack {name} is in {status}: its creation failed{why} and cannot be updated; delete it \
             (`aws cloudformation delete-stack --stack-name {name}`, or `fleetform destroy`), then apply again"
        )),
        "UPDATE_ROLLBACK_FAILED" => Some(format!(
            "stack {name} is in UPDATE_ROLLBACK_FAILED{why}: run `aws cloudformation continue-update-rollback --stack-name {name}` \
             (add --resources-to-skip for resources that cannot roll back), then apply again"
        )),
        "DELETE_FAILED" => Some(format!(
            "stack {name} is in DELETE_FAILED{why}: remove what blocks the deletion (see its events), run `fleetform destroy` again, then apply"
        )),
        _ => None,
    }
}

/// Whether a network template makes the VPC itself (the created form) or only groups in
/// an existing one; None when it does not parse.
fn creates_vpc(template: &str) -> Option<bool> {
    let t = crate::aws::stages::stack_diff::parse_template(template).ok()?;
    let resources = t.get("Resources")?.as_object()?;
    Some(resources.values().any(|r| r.get("Type").and_then(|t| t.as_str()) == Some("AWS::EC2::VPC")))
}

/// Switching a deployed cluster between a created network and an existing VPC would make
/// CloudFormation delete (or create) the VPC and replace the groups under running nodes.
fn network_form_blocker(desired: &Desired, live: &Live) -> Option<String> {
    let want = creates_vpc(&desired.stack(StackKind::Network)?.template)?;
    let stack = live.stacks.get(&StackKind::Network)?;
    let have = creates_vpc(stack.template.as_deref()?)?;
    (want != have).then(|| {
        let (was, now) = if have { ("a VPC fleetform created", "an existing VPC (`network.vpc_id`)") } else { ("an existing VPC", "a VPC fleetform creates") };
        format!(
            "stack {} holds the network of {was}, and the spec now asks for {now}: run `fleetform destroy` with the previous spec \
             (the bucket is kept), then apply with the new one",
            stack.name
        )
    })
}

/// A replacement CloudFormation cannot carry out. An Instance Connect Endpoint is the one
/// fleetform renders: AWS allows one per VPC, and CloudFormation creates the new endpoint
/// before it deletes the old one, so the update fails and rolls back.
fn unreplaceable(c: &Change) -> Option<String> {
    (c.action == Action::Replace && c.kind == "AWS::EC2::InstanceConnectEndpoint").then(|| {
        format!(
            "{} would be replaced ({}), which CloudFormation cannot do: AWS allows one Instance Connect Endpoint per VPC and the new one \
             is created before the old one is deleted; apply once with `network.instance_connect_endpoint: false` (this deletes the endpoint), \
             then again with `true`",
            c.address,
            c.reason.trim_start_matches("replace: ")
        )
    })
}

fn diff_stacks(desired: &Desired, live: &Live, out: &mut Vec<Change>) {
    for kind in StackKind::ALL {
        if desired.retained.contains(&kind) {
            continue;
        }
        let want = desired.stack(kind).map(|s| s.template.as_str());
        let have_stack = live.stacks.get(&kind);
        match (want, have_stack) {
            (None, None) => {}
            (None, Some(h)) if h.template.is_none() => out.push(Change {
                action: Action::Delete,
                address: format!("stack.{}", kind.label()),
                kind: "AWS::CloudFormation::Stack".into(),
                reason: delete_reason(desired.purpose, "no longer wanted"),
                target: Target::Stack { stack: kind },
            }),
            (want, have) => out.extend(diff_templates(kind, want, have.and_then(|h| h.template.as_deref()), desired.purpose)),
        }
    }
}

fn delete_reason(purpose: Purpose, why: &str) -> String {
    match purpose {
        Purpose::Destroy => "destroy".into(),
        Purpose::Apply => format!("delete: {why}"),
    }
}

fn diff_queues(desired: &Desired, live: &Live, out: &mut Vec<Change>) {
    let change = |action, name: &str, reason: String| Change {
        action,
        address: format!("queue.{name}"),
        kind: "AWS::SQS::Queue".into(),
        reason,
        target: Target::Queue { name: name.to_string() },
    };
    for q in &desired.queues {
        match live.queues.get(&q.name) {
            None => out.push(change(Action::Create, &q.name, "create".into())),
            Some(l) => {
                let diffs: Vec<String> = q
                    .attributes
                    .iter()
                    .filter(|(k, v)| l.attributes.get(*k) != Some(v))
                    .map(|(k, v)| match l.attributes.get(k) {
                        Some(old) if k != "RedrivePolicy" => format!("{k} {old} → {v}"),
                        _ => format!("{k} changed"),
                    })
                    .collect();
                if !diffs.is_empty() {
                    out.push(change(Action::Update, &q.name, format!("update: {}", diffs.join(", "))));
                }
            }
        }
    }
    let wanted: BTreeSet<&str> = desired.queues.iter().map(|q| q.name.as_str()).collect();
    for name in live.queues.keys().filter(|n| !wanted.contains(n.as_str())) {
        out.push(change(Action::Delete, name, delete_reason(desired.purpose, "no worker type serves its resource class")));
    }
}

fn diff_artifacts(desired: &Desired, live: &Live, out: &mut Vec<Change>) {
    let change = |action, key: &str, reason| Change {
        action,
        address: format!("store.{key}"),
        kind: "AWS::S3::Object".into(),
        reason,
        target: Target::Artifact { key: key.to_string() },
    };
    for a in &desired.artifacts {
        match live.artifacts.get(&a.key) {
            None => out.push(change(Action::Create, &a.key, format!("upload: {}", a.description))),
            Some(sha) if *sha != a.sha256 => out.push(change(Action::Update, &a.key, format!("upload: {} (changed)", a.description))),
            Some(_) => {}
        }
    }
    // Only what the store holds; what is not wanted any more but not named here stays.
    for r in desired.removed_artifacts.iter().filter(|r| live.artifacts.contains_key(&r.key)) {
        out.push(change(Action::Delete, &r.key, r.reason.clone()));
    }
}

/// What happens to a node type's launch template in this plan; decides node drift.
#[derive(Debug, Clone, PartialEq)]
enum LtState {
    Unchanged { version: i64 },
    Changing { reasons: String },
    Creating,
}

fn diff_launch_templates(desired: &Desired, live: &Live, out: &mut Vec<Change>) -> Vec<(String, LtState)> {
    let change = |action, node_type: &str, reason: String| Change {
        action,
        address: format!("launch_template.{node_type}"),
        kind: "AWS::EC2::LaunchTemplate".into(),
        reason,
        target: Target::LaunchTemplate { node_type: node_type.to_string() },
    };
    let mut states = Vec::new();
    for d in &desired.launch_templates {
        let state = match live.launch_templates.get(&d.node_type) {
            None => {
                out.push(change(Action::Create, &d.node_type, "create".into()));
                LtState::Creating
            }
            Some(l) => {
                let reasons: Vec<&str> = match &l.facts {
                    None => vec!["its default version was not written by fleetform"],
                    Some(f) => f.differences(&d.facts),
                };
                if reasons.is_empty() {
                    LtState::Unchanged { version: l.default_version }
                } else {
                    let reasons = reasons.join(", ");
                    out.push(change(
                        Action::Update,
                        &d.node_type,
                        format!("update: {reasons} (new version {})", l.default_version + 1),
                    ));
                    LtState::Changing { reasons }
                }
            }
        };
        states.push((d.node_type.clone(), state));
    }
    for (node_type, _) in live.launch_templates.iter().filter(|(t, _)| desired.launch_template(t).is_none()) {
        out.push(change(Action::Delete, node_type, delete_reason(desired.purpose, "node type is not in the spec")));
    }
    states
}

fn node_change(action: Action, node_type: Option<&str>, id: Option<&str>, label: &str, reason: String) -> Change {
    Change {
        action,
        address: format!("node.{}[{label}]", node_type.unwrap_or("?")),
        kind: "AWS::EC2::Instance".into(),
        reason,
        target: Target::Node { node_type: node_type.map(str::to_string), instance_id: id.map(str::to_string) },
    }
}

/// Why a running node no longer matches its node type, if it does not.
fn drift(i: &LiveInstance, g: &DesiredNodeGroup, lt: Option<&LtState>) -> Option<String> {
    if i.image_id != g.image_id {
        return Some(format!("AMI changed ({} → {})", i.image_id, g.image_id));
    }
    if !g.instance_types.contains(&i.instance_type) {
        return Some(format!("instance type {} is no longer in node_config.instance_types", i.instance_type));
    }
    match lt {
        Some(LtState::Changing { reasons }) => Some(format!("launch template version changed: {reasons}")),
        Some(LtState::Creating) => Some("its launch template is being created again".into()),
        Some(LtState::Unchanged { version }) if i.lt_version != Some(*version) => Some(format!(
            "launch template version changed: launched from version {}, the default is {version}",
            i.lt_version.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into())
        )),
        _ => None,
    }
}

fn diff_nodes(desired: &Desired, live: &Live, lts: &[(String, LtState)], out: &mut Vec<Change>) {
    for g in &desired.node_groups {
        let mut mine: Vec<&LiveInstance> =
            live.instances.iter().filter(|i| i.node_type.as_deref() == Some(g.node_type.as_str())).collect();
        mine.sort_by(|a, b| (a.launch_time, &a.id).cmp(&(b.launch_time, &b.id)));
        let lt = lts.iter().find(|(t, _)| *t == g.node_type).map(|(_, s)| s);
        let mut healthy: Vec<&LiveInstance> = Vec::new();
        let mut replace: Vec<(&LiveInstance, String)> = Vec::new();
        for i in &mine {
            if i.is_active() {
                match drift(i, g, lt) {
                    None => healthy.push(i),
                    Some(r) => replace.push((i, r)),
                }
            } else if i.is_stopped() {
                replace.push((i, format!("instance is {} and does no work", i.state)));
            }
        }
        // Too many (two applies raced, or max_workers was lowered): drop the drifted
        // first, then the newest healthy ones.
        let mut excess = (healthy.len() + replace.len()).saturating_sub(g.max as usize);
        let too_many = if g.is_head {
            "delete: more than one head node".to_string()
        } else {
            format!("delete: more than max_workers ({})", g.max)
        };
        while excess > 0 {
            let (victim, _) = if let Some(r) = replace.pop() { r } else { (healthy.pop().expect("excess implies nodes"), String::new()) };
            out.push(node_change(Action::Delete, Some(&g.node_type), Some(&victim.id), &victim.id, too_many.clone()));
            excess -= 1;
        }
        for (i, reason) in &replace {
            out.push(node_change(Action::Replace, Some(&g.node_type), Some(&i.id), &i.id, format!("replace: {reason}")));
        }
        let have = healthy.len() + replace.len();
        let mut gone: Vec<&&LiveInstance> = mine.iter().filter(|i| i.is_gone()).collect();
        gone.sort_by(|a, b| (b.launch_time, &b.id).cmp(&(a.launch_time, &a.id)));
        for k in 0..(g.min as usize).saturating_sub(have) {
            let reason = match gone.get(k) {
                Some(i) => format!("create: replaces {} ({})", i.id, i.state),
                None if g.is_head => "create: the head node".to_string(),
                None => format!("create: below min_workers ({have} of {})", g.min),
            };
            out.push(node_change(Action::Create, Some(&g.node_type), None, &format!("new {}", k + 1), reason));
        }
    }
    // Nodes of types the spec no longer has (or every node, when destroying).
    let groups: BTreeSet<&str> = desired.node_groups.iter().map(|g| g.node_type.as_str()).collect();
    for i in live.instances.iter().filter(|i| !i.is_gone()) {
        let known = i.node_type.as_deref().is_some_and(|t| groups.contains(t));
        if !known {
            let why = match &i.node_type {
                Some(t) => format!("node type `{t}` is not in the spec"),
                None => "it has no fleetform:node-type tag".to_string(),
            };
            out.push(node_change(Action::Delete, i.node_type.as_deref(), Some(&i.id), &i.id, delete_reason(desired.purpose, &why)));
        }
    }
}

#[cfg(test)]
mod tests;
