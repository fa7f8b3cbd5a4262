//! Which S3 locations the worker role may reach (docs/DESIGN.md, decision 21): the cluster
//! store (read and write), `storage.job_inputs` (read) and `storage.job_outputs` (read and
//! write). One definition for the worker role's policy (the reconciler's `aws::iam`) and
//! for submit, which refuses a job whose input or output the workers could not reach: such
//! a job would otherwise be accepted and fail on every node with 403. Each location is an
//! [`S3Prefix`] (`crate::s3_prefix`, which the spec's validation uses too).

use crate::s3_prefix::S3Prefix;
use crate::spec::ClusterSpec;

/// Where the worker role may read and write, from the cluster spec.
#[derive(Debug, Clone)]
pub struct WorkerAccess {
    pub store: S3Prefix,
    /// `storage.job_inputs`: read only.
    pub inputs: Vec<S3Prefix>,
    /// `storage.job_outputs`: read and write.
    pub outputs: Vec<S3Prefix>,
}

impl WorkerAccess {
    /// None without `storage.bucket` (the local provider). Locations that do not parse are
    /// left out (spec validation reports them).
    pub fn of(spec: &ClusterSpec) -> Option<WorkerAccess> {
        let parsed = |uris: &[String]| {
            uris.iter()
                .filter_map(|u| S3Prefix::parse(u).ok())
                .collect()
        };
        Some(WorkerAccess {
            store: store_location(spec)?,
            inputs: parsed(&spec.storage.job_inputs),
            outputs: parsed(&spec.storage.job_outputs),
        })
    }

    pub fn may_read(&self, uri: &str) -> bool {
        self.may_write(uri) || self.inputs.iter().any(|p| p.holds(uri))
    }

    pub fn may_write(&self, uri: &str) -> bool {
        self.store.holds(uri) || self.outputs.iter().any(|p| p.holds(uri))
    }

    /// Why the workers could not read a job's `input.uri` (normalized), if they could not.
    pub fn input_problem(&self, uri: &str) -> Option<String> {
        if !uri.starts_with("s3://") {
            return Some(format!(
                "{uri} is on this machine, which the cluster's nodes cannot read: put the data on S3, \
                 under the store {} or a location listed in the cluster spec's `storage.job_inputs`",
                self.store
            ));
        }
        (!self.may_read(uri)).then(|| {
            format!(
                "the worker role may not read {uri}: add its location to `storage.job_inputs` in the \
                 cluster spec and run `fleetform apply` (workers may read {})",
                self.readable()
            )
        })
    }

    /// Why the workers could not write a job's `output.uri` (normalized), if they could not.
    pub fn output_problem(&self, uri: &str) -> Option<String> {
        if !uri.starts_with("s3://") {
            return Some(format!(
                "{uri} is on this machine, which the cluster's nodes cannot write: use an S3 location \
                 under the store {} or one listed in the cluster spec's `storage.job_outputs`",
                self.store
            ));
        }
        (!self.may_write(uri)).then(|| {
            format!(
                "the worker role may not write {uri}: add its location to `storage.job_outputs` in the \
                 cluster spec and run `fleetform apply` (workers may write {})",
                self.writable()
            )
        })
    }

    fn readable(&self) -> String {
        let all: Vec<String> = std::iter::once(&self.store)
            .chain(&self.outputs)
            .chain(&self.inputs)
            .map(|p| p.to_string())
            .collect();
        all.join(", ")
    }

    fn writable(&self) -> String {
        let all: Vec<String> = std::iter::once(&self.store)
            .chain(&self.outputs)
            .map(|p| p.to_string())
            .collect();
        all.join(", ")
    }
}

/// The store of a spec: `storage.bucket` and `storage.prefix` (default `<cluster>/`).
fn store_location(spec: &ClusterSpec) -> Option<S3Prefix> {
    let bucket = spec.storage.bucket.clone()?;
    Some(S3Prefix {
        bucket,
        prefix: spec.store_prefix(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> WorkerAccess {
        WorkerAccess {
            store: S3Prefix::parse("s3://data/workshop/").unwrap(),
            inputs: vec![S3Prefix::parse("s3://datasets/raw-100gb-data").unwrap()],
            outputs: vec![S3Prefix::parse("s3://results").unwrap()],
        }
    }

    #[test]
    fn inputs_are_read_only_outputs_read_write() {
        let a = access();
        assert!(a.may_read("s3://datasets/raw-100gb-data/part-1.parquet"));
        assert!(!a.may_write("s3://datasets/raw-100gb-data/out"));
        assert!(a.may_read("s3://results/clean") && a.may_write("s3://results/clean"));
        assert!(a.may_write("s3://data/workshop/clean") && !a.may_read("s3://data/other"));
        assert_eq!(a.input_problem("s3://datasets/raw-100gb-data"), None);
        assert_eq!(a.output_problem("s3://data/workshop/clean"), None);
    }

    #[test]
    fn problems_name_the_field_that_grants_access() {
        let a = access();
        assert_eq!(
            a.input_problem("s3://datasets/private").unwrap(),
            "the worker role may not read s3://datasets/private: add its location to `storage.job_inputs` in the \
             cluster spec and run `fleetform apply` (workers may read s3://data/workshop/, s3://results/, \
             s3://datasets/raw-100gb-data/)"
        );
        let out = a
            .output_problem("s3://datasets/raw-100gb-data/clean")
            .unwrap();
        assert!(out.starts_with("the worker role may not write s3://datasets/raw-100gb-data/clean: add its location to `storage.job_outputs`"), "{out}");
        assert!(a
            .input_problem("file:///home/me/raw")
            .unwrap()
            .contains("cannot read"));
        assert!(a
            .output_problem("file:///home/me/out")
            .unwrap()
            .contains("`storage.job_outputs`"));
    }
}
