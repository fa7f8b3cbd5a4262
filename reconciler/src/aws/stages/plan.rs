//! A plan is data (docs/DESIGN.md, decision 2): the changes `apply` will make, each with a
//! reason, rendered the way Terraform does (`+ ~ - -/+`, a closing `Plan:` line) or as
//! JSON. `apply` executes exactly these changes.

use std::fmt::Write as _;

use serde::Serialize;

use crate::aws::names::StackKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// Destroy and create again (for nodes: launch the new one, then terminate the old).
    Replace,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Replace => "-/+",
        }
    }
}

/// What a change is about, in the terms `apply` needs to execute it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "layer")]
pub enum Target {
    /// The stack as a whole (outputs, description, or a stack that cannot be compared).
    Stack { stack: StackKind },
    StackResource { stack: StackKind, logical_id: String },
    Queue { name: String },
    Artifact { key: String },
    LaunchTemplate { node_type: String },
    Node { node_type: Option<String>, instance_id: Option<String> },
}

impl Target {
    pub fn stack(&self) -> Option<StackKind> {
        match self {
            Target::Stack { stack } | Target::StackResource { stack, .. } => Some(*stack),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub action: Action,
    /// Terraform-like address: `network.Vpc`, `queue.<name>`, `node.<type>[<id>]`.
    pub address: String,
    /// The AWS resource type, e.g. `AWS::EC2::VPC`.
    pub kind: String,
    pub reason: String,
    pub target: Target,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub changes: Vec<Change>,
    /// Facts the operator should know that are not changes (agent install per node type).
    pub notes: Vec<String>,
    /// Conditions that stop `apply` (a stack stuck in ROLLBACK_COMPLETE, ...), each one
    /// sentence saying what to do.
    pub blockers: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The change planned for `target` (the first, should there be several).
    pub fn change_for(&self, target: &Target) -> Option<&Change> {
        self.changes.iter().find(|c| c.target == *target)
    }

    /// Whether the plan deletes `target`.
    pub fn deletes(&self, target: &Target) -> bool {
        self.changes.iter().any(|c| c.action == Action::Delete && c.target == *target)
    }

    /// Whether the plan changes the `kind` stack, as a whole or one of its resources.
    pub fn touches_stack(&self, kind: StackKind) -> bool {
        self.changes.iter().any(|c| c.target.stack() == Some(kind))
    }

    /// The changes to nodes of type `node_type`, in plan order.
    pub fn node_changes<'a>(&'a self, node_type: &'a str) -> impl Iterator<Item = &'a Change> {
        self.changes
            .iter()
            .filter(move |c| matches!(&c.target, Target::Node { node_type: Some(t), .. } if t == node_type))
    }

    /// The instances the plan terminates for good, as (node type, instance id); the node
    /// type is None for an instance whose tag does not say it.
    pub fn node_deletions(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.changes.iter().filter(|c| c.action == Action::Delete).filter_map(|c| match &c.target {
            Target::Node { node_type, instance_id: Some(id) } => Some((node_type.as_deref(), id.as_str())),
            _ => None,
        })
    }

    /// Counted as Terraform does: a replacement is one add and one destroy.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Delete => s.destroy += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1
                }
            }
        }
        s
    }

    pub fn summary_line(&self) -> String {
        let s = self.summary();
        format!("Plan: {} to add, {} to change, {} to destroy.", s.add, s.change, s.destroy)
    }

    /// The human rendering. Changes are grouped under a header per layer.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.changes.is_empty() {
            let _ = writeln!(out, "No changes. Cluster `{}` matches the spec.", self.cluster);
        } else {
            let _ = writeln!(
                out,
                "Cluster `{}`: fleetform will perform the following actions:",
                self.cluster
            );
            let mut header = String::new();
            for c in &self.changes {
                let h = group_header(&self.cluster, &c.target);
                if h != header {
                    let _ = writeln!(out, "\n  # {h}");
                    header = h;
                }
                let _ = writeln!(out, "  {:>3} {} ({}): {}", c.action.symbol(), c.address, c.kind, c.reason);
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out);
            for n in &self.notes {
                let _ = writeln!(out, "Note: {n}");
            }
        }
        for b in &self.blockers {
            let _ = writeln!(out, "\nerror: {b}");
        }
        let _ = writeln!(out, "\n{}", self.summary_line());
        out
    }

    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            plan: &'a Plan,
            summary: Summary,
        }
        serde_json::to_string_pretty(&Out { plan: self, summary: self.summary() })
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

fn group_header(cluster: &str, t: &Target) -> String {
    match t {
        Target::Stack { stack } | Target::StackResource { stack, .. } => {
            format!("{} stack {}", stack.label(), stack.stack_name(cluster))
        }
        Target::Queue { .. } => "task queues".into(),
        Target::Artifact { .. } => "cluster store".into(),
        Target::LaunchTemplate { .. } => "launch templates".into(),
        Target::Node { .. } => "nodes".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: Action, address: &str, kind: &str, reason: &str, target: Target) -> Change {
        Change { action, address: address.into(), kind: kind.into(), reason: reason.into(), target }
    }

    #[test]
    fn renders_like_terraform_with_exact_counts() {
        let plan = Plan {
            cluster: "demo".into(),
            changes: vec![
                change(
                    Action::Create,
                    "network.Vpc",
                    "AWS::EC2::VPC",
                    "create",
                    Target::StackResource { stack: StackKind::Network, logical_id: "Vpc".into() },
                ),
                change(
                    Action::Update,
                    "launch_template.x86",
                    "AWS::EC2::LaunchTemplate",
                    "update: user data changed (new version)",
                    Target::LaunchTemplate { node_type: "x86".into() },
                ),
                change(
                    Action::Replace,
                    "node.x86[i-1]",
                    "AWS::EC2::Instance",
                    "replace: AMI changed (ami-a → ami-b)",
                    Target::Node { node_type: Some("x86".into()), instance_id: Some("i-1".into()) },
                ),
                change(
                    Action::Delete,
                    "node.gone[i-2]",
                    "AWS::EC2::Instance",
                    "delete: node type `gone` is not in the spec",
                    Target::Node { node_type: Some("gone".into()), instance_id: Some("i-2".into()) },
                ),
            ],
            notes: vec!["x86 (x86_64): installs bin/x86_64/fleetform-agent".into()],
            blockers: vec![],
        };
        assert_eq!(
            plan.render(),
            "Cluster `demo`: fleetform will perform the following actions:\n\
             \n  # network stack fleetform-demo-network\
             \n    + network.Vpc (AWS::EC2::VPC): create\n\
             \n  # launch templates\
             \n    ~ launch_template.x86 (AWS::EC2::LaunchTemplate): update: user data changed (new version)\n\
             \n  # nodes\
             \n  -/+ node.x86[i-1] (AWS::EC2::Instance): replace: AMI changed (ami-a → ami-b)\
             \n    - node.gone[i-2] (AWS::EC2::Instance): delete: node type `gone` is not in the spec\n\
             \nNote: x86 (x86_64): installs bin/x86_64/fleetform-agent\n\
             \nPlan: 2 to add, 1 to change, 2 to destroy.\n"
        );
        let json: serde_json::Value = serde_json::from_str(&plan.to_json()).unwrap();
        assert_eq!(json["summary"], serde_json::json!({"add": 2, "change": 1, "destroy": 2}));
        assert_eq!(json["changes"][2]["action"], "replace");
        assert_eq!(json["changes"][2]["target"]["layer"], "node");
    }

    #[test]
    fn queries_find_the_changes_apply_executes() {
        let node = |t: Option<&str>, id: Option<&str>| Target::Node {
            node_type: t.map(Into::into),
            instance_id: id.map(Into::into),
        };
        let queue = |name: &str| Target::Queue { name: name.into() };
        let plan = Plan {
            cluster: "demo".into(),
            changes: vec![
                change(
                    Action::Update,
                    "iam.Role",
                    "AWS::IAM::Role",
                    "update",
                    Target::StackResource { stack: StackKind::Iam, logical_id: "Role".into() },
                ),
                change(Action::Create, "queue.q", "AWS::SQS::Queue", "create", queue("q")),
                change(Action::Delete, "queue.old", "AWS::SQS::Queue", "delete", queue("old")),
                change(Action::Create, "node.x86", "AWS::EC2::Instance", "min_workers", node(Some("x86"), None)),
                change(Action::Replace, "node.x86[i-1]", "AWS::EC2::Instance", "AMI", node(Some("x86"), Some("i-1"))),
                change(Action::Delete, "node.x86[i-2]", "AWS::EC2::Instance", "surplus", node(Some("x86"), Some("i-2"))),
                change(Action::Delete, "node.gone[i-3]", "AWS::EC2::Instance", "gone", node(Some("gone"), Some("i-3"))),
                change(Action::Delete, "node[i-4]", "AWS::EC2::Instance", "untagged", node(None, Some("i-4"))),
            ],
            notes: vec![],
            blockers: vec![],
        };

        assert_eq!(plan.change_for(&queue("q")).map(|c| c.action), Some(Action::Create));
        assert_eq!(plan.change_for(&queue("old")).map(|c| c.action), Some(Action::Delete));
        assert_eq!(plan.change_for(&queue("other")), None);
        assert!(plan.deletes(&queue("old")));
        assert!(!plan.deletes(&queue("q")), "a create is not a delete");

        assert!(plan.touches_stack(StackKind::Iam), "one resource is enough");
        assert!(!plan.touches_stack(StackKind::Network));

        let x86: Vec<&str> = plan.node_changes("x86").map(|c| c.address.as_str()).collect();
        assert_eq!(x86, ["node.x86", "node.x86[i-1]", "node.x86[i-2]"]);
        assert_eq!(plan.node_changes("arm").count(), 0);

        let deleted: Vec<(Option<&str>, &str)> = plan.node_deletions().collect();
        assert_eq!(deleted, [(Some("x86"), "i-2"), (Some("gone"), "i-3"), (None, "i-4")]);
    }

    #[test]
    fn empty_plan_says_so() {
        let plan = Plan { cluster: "demo".into(), ..Default::default() };
        assert_eq!(
            plan.render(),
            "No changes. Cluster `demo` matches the spec.\n\nPlan: 0 to add, 0 to change, 0 to destroy.\n"
        );
    }
}
