//! `s3://bucket/prefix/`: an S3 location as a cluster spec names one (`storage.job_inputs`,
//! `storage.job_outputs`), read as a directory. The spec validates its locations with it;
//! `data_access` grants and checks them.

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
