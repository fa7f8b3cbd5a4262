//! Resources as Ray names them: `CPU`, `memory` (GiB) and custom ones such as `Intel`
//! or `Graviton`. A task's *resource class* decides which queue it waits in, so a node
//! only receives tasks it can run.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub const CPU: &str = "CPU";
pub const MEMORY: &str = "memory";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Resources(pub BTreeMap<String, f64>);

impl Resources {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, name: &str, q: f64) -> Self {
        self.0.insert(name.to_string(), q);
        self
    }
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }
    pub fn cpu(&self) -> f64 {
        self.get(CPU).unwrap_or(0.0)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &f64)> {
        self.0.iter()
    }
    /// Does a node offering `self` have every resource `demand` asks for?
    pub fn satisfies(&self, demand: &Resources) -> bool {
        demand.0.iter().all(|(k, q)| *q <= 0.0 || self.get(k).unwrap_or(0.0) >= *q)
    }
    /// The custom resources (not CPU, not memory) asked for with a positive amount.
    pub fn custom_names(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, q)| k.as_str() != CPU && k.as_str() != MEMORY && **q > 0.0)
            .map(|(k, _)| k.as_str())
            .collect()
    }
    /// The queue class of a task needing these resources: its custom resource names.
    pub fn class(&self) -> ResourceClass {
        ResourceClass(self.custom_names().iter().map(|s| s.to_string()).collect())
    }
    /// Every class a node with these resources can serve: each subset of its custom
    /// resources (a node with `{Intel, AMX}` serves `default`, `intel`, `amx`, `amx-intel`).
    pub fn served_classes(&self) -> Vec<ResourceClass> {
        let names: Vec<String> = self.custom_names().iter().map(|s| s.to_string()).collect();
        let n = names.len().min(6); // subsets grow as 2^n; node types have a handful
        (0u32..(1 << n))
            .map(|mask| ResourceClass((0..n).filter(|i| mask & (1 << i) != 0).map(|i| names[i].clone()).collect()))
            .collect()
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}: {v}")?;
        }
        f.write_str("}")
    }
}

/// The sorted custom resource names of a task; `default` when it needs none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceClass(pub Vec<String>);

impl ResourceClass {
    /// A name usable in an SQS queue name or a file name: `default`, `intel`, `amx-intel`.
    pub fn slug(&self) -> String {
        if self.0.is_empty() {
            "default".to_string()
        } else {
            let mut v: Vec<String> = self.0.iter().map(|s| s.to_ascii_lowercase()).collect();
            v.sort();
            v.join("-")
        }
    }
}

impl fmt::Display for ResourceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let node = Resources::new().with(CPU, 8.0).with("Intel", 1.0);
        let task = Resources::new().with(CPU, 1.0).with("Intel", 1.0);
        assert!(node.satisfies(&task));
        assert!(!Resources::new().with(CPU, 8.0).with("Graviton", 1.0).satisfies(&task));
        assert_eq!(task.class().slug(), "intel");
        assert_eq!(Resources::new().with(CPU, 1.0).class().slug(), "default");
        let served: Vec<String> = node.served_classes().iter().map(|c| c.slug()).collect();
        assert_eq!(served, vec!["default", "intel"]);
    }
}
