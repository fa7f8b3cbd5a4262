//! `fleetform validate`: the cluster spec, and job specs checked exactly as `submit`
//! checks them (one function, `jobs::check_job`): every problem at once, with
//! file:line:column.

use std::path::{Path, PathBuf};

use fleetform_core::ClusterSpec;
use fleetform_runtime::Connections;

use crate::cluster::Handles;
use crate::jobs::{check_job, JobCheck};

pub async fn run(cluster_file: &Path, jobs: &[PathBuf], set: &[String]) -> anyhow::Result<i32> {
    let spec = match ClusterSpec::load(cluster_file) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{d}");
            return Ok(1);
        }
    };
    // Job inputs on S3 are read through the cluster's AWS configuration, as submit does.
    let conn = if jobs.is_empty() {
        Connections::from_env()
    } else {
        Handles::of(&spec).await.map(|h| h.conn).unwrap_or_else(|e| {
            eprintln!("warning: {}: job inputs on S3 cannot be checked", crate::errors::render(&e));
            Connections::from_env()
        })
    };
    let mut failed = false;
    // Outputs of the jobs checked so far: a later job may read one (generate, then clean),
    // and that input exists only once the earlier job has run.
    let mut produced: Vec<String> = Vec::new();
    for job in jobs {
        match check_job(&conn, &spec, job, set, &produced).await {
            Ok(JobCheck::Checked(c, _code)) => {
                if let Some(notice) = c.file_size_notice() {
                    eprintln!("{}: note: {notice}", job.display());
                }
                produced.push(c.spec.output.uri.clone());
            }
            Ok(JobCheck::InputNotYetWritten { output_uri, input_uri }) => {
                eprintln!("{}: note: its input {input_uri} is written by a job before it; its data is checked at submit", job.display());
                produced.push(output_uri);
            }
            Err(e) => {
                eprintln!("{}", crate::errors::render(&e));
                failed = true;
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
