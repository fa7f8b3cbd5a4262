//! A counting, delaying HTTP/1.1 proxy in front of the S3 server (test support for the
//! benchmarks, not shipped). It parses each request's line and headers to find where the
//! request (and its body: Content-Length or chunked) ends, counts it by method, and can
//! hold each request back for a fixed time before forwarding it, which the client sees as
//! first-byte latency. Responses are copied through unparsed; keep-alive, 100-continue
//! and pipelining work because the two directions are independent byte streams.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};

/// What went through the proxy since the last `reset`.
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    /// Requests by method (GET, PUT, POST, HEAD, DELETE...).
    pub requests: BTreeMap<String, u64>,
    /// Bytes from the clients to the server (request lines, headers and bodies): written.
    pub bytes_up: u64,
    /// Bytes from the server to the clients (status lines, headers and bodies): read.
    pub bytes_down: u64,
}

impl Traffic {
    pub fn count(&self, method: &str) -> u64 {
        self.requests.get(method).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct Counters {
    requests: Mutex<BTreeMap<String, u64>>,
    up: AtomicU64,
    down: AtomicU64,
    delay_ms: AtomicU64,
}

pub struct Proxy {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Listen on a free loopback port and forward every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let counters = Arc::new(Counters::default());
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let c = counters.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(client, upstream, c).await {
                        eprintln!("proxy: a connection ended with {e}");
                    }
                });
            }
        });
        Proxy {
            addr,
            counters,
            _runtime: runtime,
        }
    }

    /// Hold every request back this long before forwarding it (0: none).
    pub fn set_delay(&self, delay: Duration) {
        self.counters
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn reset(&self) {
        self.counters.requests.lock().unwrap().clear();
        self.counters.up.store(0, Ordering::SeqCst);
        self.counters.down.store(0, Ordering::SeqCst);
    }

    pub fn traffic(&self) -> Traffic {
        Traffic {
            requests: self.counters.requests.lock().unwrap().clone(),
            bytes_up: self.counters.up.load(Ordering::SeqCst),
            bytes_down: self.counters.down.load(Ordering::SeqCst),
        }
    }
}

const BUFFER: usize = 256 * 1024;

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    c: Arc<Counters>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = c.clone();
    let responses = tokio::spawn(async move {
        let copied = copy_counting(&mut server_read, &mut client_write, &down.down).await;
        let _ = client_write.shutdown().await;
        copied
    });
    let mut requests = BufReader::with_capacity(BUFFER, client_read);
    while forward_request(&mut requests, &mut server_write, &c).await? {}
    let _ = server_write.shutdown().await;
    responses.await.map_err(std::io::Error::other)??;
    Ok(())
}

/// Forward one request; false when the client closed the connection between requests.
async fn forward_request<R, W>(from: &mut R, to: &mut W, c: &Counters) -> std::io::Result<bool>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut head = Vec::with_capacity(1024);
    loop {
        let start = head.len();
        if from.read_until(b'\n', &mut head).await? == 0 {
            return if head.is_empty() {
                Ok(false)
            } else {
                Err(bad("the client closed inside a request head"))
            };
        }
        let line = &head[start..];
        if line == b"\r\n" || line == b"\n" {
            if start == 0 {
                head.clear(); // stray CRLF between requests (RFC 9112 §2.2): ignore
                continue;
            }
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let method = text.split_whitespace().next().unwrap_or("?").to_string();
    let header = |name: &str| {
        text.lines().skip(1).find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length: u64 = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    *c.requests.lock().unwrap().entry(method).or_default() += 1;
    let delay = c.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    to.write_all(&head).await?;
    let mut sent = head.len() as u64;
    sent += if chunked {
        forward_chunked(from, to).await?
    } else {
        copy_exact(from, to, length).await?
    };
    c.up.fetch_add(sent, Ordering::Relaxed);
    Ok(true)
}

/// A chunked body: size lines, chunks, the last chunk and the trailer section.
async fn forward_chunked<R, W>(from: &mut R, to: &mut W) -> std::io::Result<u64>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut sent = 0;
    loop {
        let mut line = Vec::new();
        if from.read_until(b'\n', &mut line).await? == 0 {
            return Err(bad("the client closed inside a chunked body"));
        }
        to.write_all(&line).await?;
        sent += line.len() as u64;
        let digits = String::from_utf8_lossy(&line);
        let digits = digits.split(';').next().unwrap_or("").trim();
        let size =
            u64::from_str_radix(digits, 16).map_err(|_| bad("a chunk size that is not hex"))?;
        if size == 0 {
            break;
        }
        sent += copy_exact(from, to, size + 2).await?; // the chunk and its CRLF
    }
    loop {
        let mut line = Vec::new();
        if from.read_until(b'\n', &mut line).await? == 0 {
            return Err(bad("the client closed inside a chunked trailer"));
        }
        to.write_all(&line).await?;
        sent += line.len() as u64;
        if line == b"\r\n" || line == b"\n" {
            return Ok(sent);
        }
    }
}

async fn copy_exact<R, W>(from: &mut R, to: &mut W, n: u64) -> std::io::Result<u64>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let copied = tokio::io::copy_buf(&mut (&mut *from).take(n), to).await?;
    if copied < n {
        return Err(bad("the client closed inside a request body"));
    }
    Ok(copied)
}

async fn copy_counting<R, W>(from: &mut R, to: &mut W, counter: &AtomicU64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}
