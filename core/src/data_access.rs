//! Which S3 locations the worker role may reach (DESIGN.md decision 5): the cluster store
//! (read and write), `storage.job_inputs` (read) and `storage.job_outputs` (read and
//! write). One definition for the worker role's policy (the reconciler's `aws::iam`) and
//! for submit, which refuses a job whose input or output the workers could not reach:
//! such a job would otherwise be accepted and fail on every node with 403.

use std::fmt;

use crate::spec::ClusterSpec;

/// `s3://bucket/prefix/`: a bucket and a key prefix that is empty (the whole bucket) or
/// ends in `/`, so that `raw` never also grants `raw-private/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Prefix {
    pub bucket: String,
    pub prefix: String,
}

impl S3Prefix {
    /// Parse `s3://bucket[/prefix[/]]`. IAM wildcards (`*`, `?`) are refused: a location
    /// is granted as written, nothing wider.
    pub fn parse(uri: &str) -> Result<S3Prefix, String> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{uri}` is not an S3 location: write s3://bucket/prefix/"))?;
        if rest.contains(['*', '?']) {
            return Err(format!(
                "`{uri}`: wildcards are not allowed; name the bucket and prefix"
            ));
        }
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!(
                "`{uri}` names no bucket: write s3://bucket/prefix/"
            ));
        }
        Ok(S3Prefix {
            bucket: bucket.to_string(),
            prefix: as_directory(key),
        })
    }

    /// The store of a spec: `storage.bucket` and `storage.prefix` (default `<cluster>/`).
    pub fn store(spec: &ClusterSpec) -> Option<S3Prefix> {
        let bucket = spec.storage.bucket.clone()?;
        Some(S3Prefix {
            bucket,
            prefix: spec.store_prefix(),
        })
    }

    /// Does this location hold everything under `uri` (an `s3://` file or directory)?
    pub fn holds(&self, uri: &str) -> bool {
        match S3Prefix::parse(uri) {
            Ok(p) => p.bucket == self.bucket && p.prefix.starts_with(&self.prefix),
            Err(_) => false,
        }
    }
}

impl fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A key prefix read as a directory: no leading `/`, a trailing `/` unless empty.
fn as_directory(key: &str) -> String {
    let key = key.trim_matches('/');
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}/")
    }
}

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
            store: S3Prefix::store(spec)?,
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
    fn locations_are_directories() {
        assert_eq!(
            S3Prefix::parse("s3://b/raw").unwrap(),
            S3Prefix {
                bucket: "b".into(),
                prefix: "raw/".into()
            }
        );
        assert_eq!(S3Prefix::parse("s3://b/").unwrap().prefix, "");
        let raw = S3Prefix::parse("s3://b/raw/").unwrap();
        assert!(raw.holds("s3://b/raw") && raw.holds("s3://b/raw/part/x.csv"));
        assert!(
            !raw.holds("s3://b/raw-private/x.csv"),
            "a prefix is a directory, not a string prefix"
        );
        assert!(!raw.holds("s3://other/raw/x.csv") && !raw.holds("s3://b"));
        assert!(S3Prefix::parse("s3://b").unwrap().holds("s3://b/anything"));
        assert!(S3Prefix::parse("s3://b/raw/*")
            .unwrap_err()
            .contains("wildcards"));
        assert!(S3Prefix::parse("/data")
            .unwrap_err()
            .contains("not an S3 location"));
        assert!(S3Prefix::parse("s3:///raw")
            .unwrap_err()
            .contains("names no bucket"));
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
