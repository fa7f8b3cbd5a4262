//! The cluster store: job records, task commits, checkpoints, node heartbeats and agent
//! binaries, as small JSON objects under one location (docs/DESIGN.md; the key layout in
//! `fleetform_core::layout`). Commits use create-if-absent so the first writer wins.

use std::path::Path as FsPath;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::location::Location;
use crate::Connections;

/// Upload part size: S3's guidance is 8-16 MiB (its minimum is 5 MiB): large enough that
/// a part's request overhead is small, small enough to bound memory.
const UPLOAD_PART_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Store {
    pub loc: Location,
    /// How the store was reached: the locations its records name (a job's input and
    /// output) open through the same connections.
    pub conn: Connections,
}

impl Store {
    pub async fn open(conn: &Connections, uri: &str) -> Result<Store> {
        Ok(Store { loc: Location::open(conn, uri).await?, conn: conn.clone() })
    }

    /// Open through an explicit AWS configuration (a test's, pointed at moto).
    #[cfg(feature = "aws")]
    pub async fn open_with(config: &aws_config::SdkConfig, uri: &str) -> Result<Store> {
        Store::open(&Connections::with_sdk(config.clone()), uri).await
    }

    pub fn uri(&self) -> &str {
        &self.loc.uri
    }

    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        put_json(&self.loc, key, value).await
    }

    /// Create `key` only if absent. Ok(false) when another writer got there first.
    pub async fn create_json<T: Serialize>(&self, key: &str, value: &T) -> Result<bool> {
        create_json(&self.loc, key, value).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        get_json(&self.loc, key).await
    }

    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.loc.store.put(&self.loc.key(key), PutPayload::from(bytes)).await.with_context(|| format!("cannot write {}/{key}", self.loc.uri))?;
        Ok(())
    }

    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>> {
        match self.loc.store.get(&self.loc.key(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.with_context(|| format!("cannot read {}/{key}", self.loc.uri))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}/{key}", self.loc.uri)),
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.loc.store.head(&self.loc.key(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot read {}/{key}", self.loc.uri)),
        }
    }

    /// Keys (relative to the store) below a prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        list(&self.loc, prefix).await
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        delete(&self.loc, key).await
    }

    /// The "directories" directly below a prefix (`jobs/` → `["jobs/a", "jobs/b"]`): one
    /// delimited LIST instead of listing every key beneath, so watching a store with many
    /// finished jobs costs what watching one costs.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let p = self.loc.key(prefix.trim_end_matches('/'));
        let listed = self.loc.store.list_with_delimiter(Some(&p)).await.with_context(|| format!("cannot list {}/{prefix}", self.loc.uri))?;
        let mut dirs: Vec<String> = listed.common_prefixes.iter().map(|d| self.loc.relative(d)).collect();
        dirs.sort();
        Ok(dirs)
    }
}

pub async fn put_json<T: Serialize>(loc: &Location, key: &str, value: &T) -> Result<()> {
    let body = serde_json::to_vec_pretty(value)?;
    loc.store
        .put(&loc.key(key), PutPayload::from(body))
        .await
        .with_context(|| format!("cannot write {}/{key}", loc.uri))?;
    Ok(())
}

pub async fn create_json<T: Serialize>(loc: &Location, key: &str, value: &T) -> Result<bool> {
    let body = serde_json::to_vec_pretty(value)?;
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    match loc.store.put_opts(&loc.key(key), PutPayload::from(body), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot create {}/{key}", loc.uri)),
    }
}

pub async fn get_json<T: DeserializeOwned>(loc: &Location, key: &str) -> Result<Option<T>> {
    match loc.store.get(&loc.key(key)).await {
        Ok(r) => {
            let bytes = r.bytes().await.with_context(|| format!("cannot read {}/{key}", loc.uri))?;
            let v = serde_json::from_slice(&bytes).with_context(|| format!("{}/{key} is not valid JSON", loc.uri))?;
            Ok(Some(v))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}/{key}", loc.uri)),
    }
}

pub async fn list(loc: &Location, prefix: &str) -> Result<Vec<String>> {
    let p = loc.key(prefix.trim_end_matches('/'));
    let metas: Vec<_> = loc
        .store
        .list(Some(&p))
        .try_collect()
        .await
        .with_context(|| format!("cannot list {}/{prefix}", loc.uri))?;
    let mut keys: Vec<String> = metas.iter().map(|m| loc.relative(&m.location)).collect();
    keys.sort();
    Ok(keys)
}

pub async fn delete(loc: &Location, key: &str) -> Result<()> {
    match loc.store.delete(&loc.key(key)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot delete {}/{key}", loc.uri)),
    }
}

/// A finished output chunk, ready to go to its object: the bytes in memory (blocks handed
/// over without a copy) or a file on the spill disk.
pub enum Staged {
    Memory { blocks: Vec<Bytes>, bytes: u64 },
    File { path: std::path::PathBuf, bytes: u64 },
}

impl Staged {
    pub fn bytes(&self) -> u64 {
        match self {
            Staged::Memory { bytes, .. } | Staged::File { bytes, .. } => *bytes,
        }
    }
}

/// Objects up to this size go up in one PUT: one request instead of at least four (create,
/// parts, complete), well within S3's 5 GB for a PUT and below the 100 MB from which S3
/// advises multipart. A task's last upload runs while the next task computes, so one
/// connection per object is enough.
const SINGLE_PUT_MAX: u64 = 64 * 1024 * 1024;
/// Upload parts in flight at once per file: S3 takes parts in parallel, and one
/// connection's rate is far below a node's network.
const UPLOAD_PARTS_IN_FLIGHT: usize = 4;
/// S3 allows at most 10,000 parts per upload.
const MAX_PARTS: u64 = 10_000;

/// The part size for a file of `size` bytes: `UPLOAD_PART_BYTES`, or larger (whole MiB)
/// when the file would need more than S3's 10,000 parts.
fn part_size(size: u64) -> usize {
    let mib = 1024 * 1024;
    (UPLOAD_PART_BYTES as u64).max(size.div_ceil(MAX_PARTS).div_ceil(mib) * mib) as usize
}

/// Upload a finished local file as one object (see `upload_staged`).
pub async fn upload_file(loc: &Location, key: &str, file: &FsPath) -> Result<u64> {
    let size = std::fs::metadata(file).with_context(|| format!("cannot stat {}", file.display()))?.len();
    upload_staged(loc, key, Staged::File { path: file.to_path_buf(), bytes: size }).await
}

/// Make a finished output chunk the object `key`. A staged file goes to a local
/// destination by an atomic rename when it is on the same filesystem (no second copy).
/// To an object store, a chunk of up to `SINGLE_PUT_MAX` goes up in one PUT, a larger one in parts,
/// several in flight, read from the file part by part (memory stays bounded whatever the
/// file size) or handed over from memory without a copy. The object becomes visible only
/// when complete (object_store stages local writes; an S3 multipart upload is atomic).
pub async fn upload_staged(loc: &Location, key: &str, staged: Staged) -> Result<u64> {
    let size = staged.bytes();
    if let (Some(dest), Staged::File { path: file, .. }) = (loc.local_path(key), &staged) {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::rename(file, &dest).is_ok() {
            return Ok(size);
        }
    }
    let path: Path = loc.key(key);
    let part = part_size(size);
    let failed = || format!("upload of {}/{key} failed", loc.uri);
    if size <= SINGLE_PUT_MAX {
        let payload = match &staged {
            Staged::Memory { blocks, .. } => PutPayload::from_iter(blocks.iter().cloned()),
            Staged::File { path: file, .. } => PutPayload::from(tokio::fs::read(file).await.with_context(|| format!("cannot read {}", file.display()))?),
        };
        loc.store.put(&path, payload).await.with_context(|| format!("cannot write {}/{key}", loc.uri))?;
    } else {
        let upload = loc.store.put_multipart(&path).await.with_context(|| format!("cannot start upload of {}/{key}", loc.uri))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        if let Err(e) = send_parts(&mut writer, &staged, part).await {
            let _ = writer.abort().await; // S3 would keep (and bill) the parts sent so far
            return Err(e).with_context(failed);
        }
        writer.finish().await.with_context(|| format!("cannot finish upload of {}/{key}", loc.uri))?;
    }
    if let Staged::File { path: file, .. } = &staged {
        let _ = std::fs::remove_file(file);
    }
    Ok(size)
}

/// Hand a staged chunk to a multipart upload, at most `UPLOAD_PARTS_IN_FLIGHT` parts at once.
async fn send_parts(writer: &mut WriteMultipart, staged: &Staged, part: usize) -> Result<()> {
    match staged {
        Staged::Memory { blocks, .. } => {
            for b in blocks {
                writer.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await?;
                writer.put(b.clone());
            }
        }
        Staged::File { path: file, .. } => {
            let mut f = tokio::fs::File::open(file).await.with_context(|| format!("cannot read {}", file.display()))?;
            loop {
                let buf = read_part(&mut f, part).await.with_context(|| format!("cannot read {}", file.display()))?;
                if buf.is_empty() {
                    break;
                }
                writer.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await?;
                writer.put(Bytes::from(buf));
            }
        }
    }
    Ok(())
}

/// Up to `len` bytes of `f` (fewer only at its end), in one buffer handed on without a copy.
async fn read_part(f: &mut tokio::fs::File, len: usize) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        if f.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod upload_tests {
    #[test]
    fn parts_stay_within_s3s_limits() {
        let mib = 1024 * 1024;
        assert_eq!(super::part_size(100 * mib), 16 * mib as usize);
        // 200 GB needs larger parts: 10,000 of them at most, each at least 5 MiB.
        let big = 200_000_000_000u64;
        let p = super::part_size(big) as u64;
        assert!(big.div_ceil(p) <= 10_000 && p >= 5 * mib && p % mib == 0, "{p}");
    }
}
