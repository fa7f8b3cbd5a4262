//! `fleetform validate`: the cluster spec, and job specs against it.

use std::path::{Path, PathBuf};

use fleetform_core::{ClusterSpec, JobSpec};

pub fn run(cluster_file: &Path, jobs: &[PathBuf], set: &[String]) -> anyhow::Result<i32> {
    let spec = match ClusterSpec::load(cluster_file) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{d}");
            return Ok(1);
        }
    };
    let mut failed = false;
    for job in jobs {
        match JobSpec::load(job, &crate::jobs::sets_for(job, set)) {
            Err(d) => {
                eprintln!("{d}");
                failed = true;
            }
            Ok(j) => {
                if let Err(msg) = feasible(&spec, &j) {
                    eprintln!("{}: resources: {msg}", job.display());
                    failed = true;
                }
            }
        }
    }
    if failed {
        return Ok(1);
    }
    println!("{} is valid ({} node types{})", cluster_file.display(), spec.available_node_types.len(),
        if jobs.is_empty() { String::new() } else { format!(", {} job(s) checked", jobs.len()) });
    Ok(0)
}

/// Can some worker node type run a task of this job? The message names what is missing.
pub fn feasible(spec: &ClusterSpec, job: &JobSpec) -> Result<(), String> {
    let local = spec.provider.kind == fleetform_core::spec::ProviderKind::Local;
    let fits = spec.worker_types().any(|(_, t)| {
        // Local workers without an explicit CPU get the machine's cores.
        let mut offered = t.resources.clone();
        if local && offered.get(fleetform_core::resources::CPU).is_none() {
            offered = offered.with(fleetform_core::resources::CPU, f64::MAX);
        }
        offered.satisfies(&job.resources)
    });
    if fits {
        return Ok(());
    }
    let offered: Vec<String> = spec.worker_types().map(|(n, t)| format!("{n} {}", t.resources)).collect();
    Err(format!("no node type provides {}; node types offer: {}", job.resources, offered.join("; ")))
}
