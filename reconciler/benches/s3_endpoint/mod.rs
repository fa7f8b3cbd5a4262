//! A local S3 endpoint for the data-plane benchmarks: the `s3s-fs` server (a directory
//! served as S3, so the generated parquet files are hard-linked in rather than uploaded)
//! on a free loopback port, behind a proxy that counts requests and bytes and can add
//! first-byte latency. Test support, not shipped.

pub mod proxy;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use proxy::{Proxy, Traffic};

pub const ACCESS_KEY: &str = "fleetform-bench";
pub const SECRET_KEY: &str = "fleetform-bench-secret";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "bench";
const S3S_FS_VERSION: &str = "0.14.1";

/// The `s3s-fs` binary: on PATH or in ~/.cargo/bin, else `cargo install`ed now.
pub fn s3s_fs_binary() -> PathBuf {
    let cargo_bin = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"))
        .join("bin");
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([cargo_bin.clone()])
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file());
    if let Some(p) = found {
        return p;
    }
    eprintln!("installing the S3 server: cargo install s3s-fs@{S3S_FS_VERSION} --features binary (a few minutes)");
    let ok = Command::new("cargo")
        .args([
            "install",
            &format!("s3s-fs@{S3S_FS_VERSION}"),
            "--features",
            "binary",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cannot install s3s-fs: run `cargo install s3s-fs@{S3S_FS_VERSION} --features binary` and rerun the benchmark");
    cargo_bin.join("s3s-fs")
}

/// `s3s-fs` serving `root` (bucket `BUCKET` is its subdirectory), killed on drop.
pub struct S3Server {
    child: Child,
    pub addr: SocketAddr,
    pub root: PathBuf,
}

impl S3Server {
    pub fn start(root: &Path) -> S3Server {
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(s3s_fs_binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start s3s-fs");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {addr} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        S3Server {
            child,
            addr,
            root: root.to_path_buf(),
        }
    }

    /// Make `local` (a directory of files) the object prefix `key_prefix` by hard links:
    /// every engine reads the very same bytes, and nothing is uploaded.
    pub fn link_in(&self, local: &Path, key_prefix: &str) {
        let dest = self.root.join(BUCKET).join(key_prefix);
        if dest.exists() {
            return;
        }
        let staging = self
            .root
            .join(BUCKET)
            .join(format!(".{key_prefix}.linking"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).unwrap();
        for e in std::fs::read_dir(local).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".parquet") {
                std::fs::hard_link(e.path(), staging.join(&name)).unwrap();
                self.record_etag(&format!("{key_prefix}/{name}"), &e.metadata().unwrap());
            }
        }
        std::fs::rename(&staging, &dest).unwrap();
    }

    /// Give a linked-in object the ETag s3s-fs records for objects PUT through it: without
    /// one, s3s-fs computes the whole file's MD5 on every GET and HEAD (ranged ones too),
    /// which no real S3 does. Any value that changes with the content is a valid ETag;
    /// size and modification time serve.
    fn record_etag(&self, key: &str, meta: &std::fs::Metadata) {
        let mtime = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let info = serde_json::json!({ "e_tag": format!("{:x}{:016x}", meta.len(), mtime) });
        let path = self.root.join(format!(
            ".bucket-{}.object-{}.internal.json",
            base64_url(BUCKET),
            base64_url(key)
        ));
        std::fs::write(path, info.to_string()).unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding the objects under `key_prefix`.
    pub fn object_dir(&self, key_prefix: &str) -> PathBuf {
        self.root.join(BUCKET).join(key_prefix)
    }

    /// Remove an output prefix (directly on disk: the server keeps no index).
    pub fn remove(&self, key_prefix: &str) {
        let _ = std::fs::remove_dir_all(self.root.join(BUCKET).join(key_prefix));
    }

    /// Total size of the objects under a prefix (files on disk, the server's metadata
    /// excluded).
    pub fn size(&self, key_prefix: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        }
        walk(&self.root.join(BUCKET).join(key_prefix))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// URL-safe base64 without padding: how s3s-fs 0.14 names an object's side files.
fn base64_url(s: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The environment an S3 client needs to reach `endpoint` (the proxy): the AWS SDK's and
/// object_store's standard variables, read by fleetform's agents and CLI and by Polars.
pub fn client_env(endpoint: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", format!("http://{endpoint}")),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_REGION", REGION.into()),
        ("AWS_DEFAULT_REGION", REGION.into()),
        ("AWS_ALLOW_HTTP", "true".into()),
        // No instance metadata lookups from any SDK's credential chain.
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}
