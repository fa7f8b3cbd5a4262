//! A small HTTP/1.1 server for read-only pages (the dashboard, an agent's `/metrics`),
//! with every input bounded: tiny_http, which served them before, reads a request's head
//! without limit (one 200 MB header line grew the dashboard from 117 MB to 517 MB RSS for
//! good). Here a head larger than `Limits::max_head_bytes` is answered 431 (414 when the
//! request line alone is too long) and the connection closed, a client that sends nothing
//! is dropped after `Limits::idle`, and at most `Limits::max_connections` are served at
//! once (503 beyond). Parsing is `httparse`'s (hyper's parser, already in the tree).
//!
//! Only GET and HEAD without a body are served; the answer to anything else is 405 or
//! 413, then the connection is closed. Keep-alive is honoured (the page polls every 2 s).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

/// What one connection may cost the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line and headers together (nginx's default header buffers are 1 + 4×8 KiB).
    pub max_head_bytes: usize,
    pub max_headers: usize,
    /// A connection that completes no request head within this time is closed.
    pub idle: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_head_bytes: 16 * 1024, max_headers: 64, idle: Duration::from_secs(15), max_connections: 64 }
    }
}

/// A request the handler sees: only what a read-only page needs.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The target without its query string.
    pub path: String,
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Response {
        Response { status, content_type, body: body.into() }
    }
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A bound listener; `serve` starts answering, dropping the `Serving` stops.
pub struct Server {
    listener: TcpListener,
    limits: Limits,
}

impl Server {
    pub fn bind(addr: SocketAddr) -> io::Result<Server> {
        Ok(Server { listener: TcpListener::bind(addr)?, limits: Limits::default() })
    }
    pub fn with_limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| anyhow!("the listener has no address: {e}"))
    }
    /// Answer requests from a thread of its own (and one per open connection).
    pub fn serve(self, handler: Handler) -> Result<Serving> {
        let addr = self.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let (limits, flag) = (self.limits, stop.clone());
        let thread = std::thread::spawn(move || accept_loop(self.listener, limits, handler, flag, open));
        Ok(Serving { addr, stop, thread: Some(thread) })
    }
}

/// A server answering; dropping it stops accepting (open connections end on their own).
pub struct Serving {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept: one connection to ourselves.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, limits: Limits, handler: Handler, stop: Arc<AtomicBool>, open: Arc<AtomicUsize>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            open.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = write_response(&mut stream, &Response::text(503, "too many open connections; retry shortly\n"), false, false);
            continue;
        }
        let (handler, open) = (handler.clone(), open.clone());
        std::thread::spawn(move || {
            let _ = connection(stream, limits, &handler);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Serve one connection's requests until it closes, errs, idles or breaks a limit.
fn connection(mut stream: TcpStream, limits: Limits, handler: &Handler) -> io::Result<()> {
    stream.set_write_timeout(Some(limits.idle))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let head = match read_head(&mut stream, &mut buf, limits)? {
            Head::Complete(head) => head,
            Head::Closed => return Ok(()),
            Head::Refused(response) => {
                write_response(&mut stream, &response, false, false)?;
                // Discard what the client is still sending rather than reset the
                // connection under its unread answer; bounded by the idle time.
                return linger(stream, limits.idle);
            }
        };
        let (response, keep_alive) = answer(&head, handler);
        write_response(&mut stream, &response, head.method == "HEAD", keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

struct ParsedHead {
    method: String,
    path: String,
    keep_alive: bool,
    has_body: bool,
}

enum Head {
    Complete(ParsedHead),
    Closed,
    Refused(Response),
}

/// Read until one request head is complete (its bytes drained from `buf`), refusing
/// heads over the limits. Bytes past the head stay in `buf` for the next request.
fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, limits: Limits) -> io::Result<Head> {
    let deadline = Instant::now() + limits.idle;
    let mut chunk = [0u8; 4096];
    loop {
        if !buf.is_empty() {
            match parse(buf, limits) {
                Parse::Done(head, used) => {
                    buf.drain(..used);
                    return Ok(Head::Complete(head));
                }
                Parse::Bad(why) => return Ok(Head::Refused(Response::text(400, format!("bad request: {why}\n")))),
                Parse::TooManyHeaders => {
                    return Ok(Head::Refused(Response::text(431, format!("more than {} header fields\n", limits.max_headers))))
                }
                Parse::Partial if buf.len() >= limits.max_head_bytes => return Ok(Head::Refused(too_large(buf, limits))),
                Parse::Partial => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Head::Closed);
        }
        stream.set_read_timeout(Some(left))?;
        let room = (limits.max_head_bytes - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Ok(Head::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(Head::Closed),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// 414 when not even the request line fits, 431 when the headers do not.
fn too_large(buf: &[u8], limits: Limits) -> Response {
    let max = limits.max_head_bytes;
    if !buf.contains(&b'\n') {
        Response::text(414, format!("the request line is longer than {max} bytes\n"))
    } else {
        Response::text(431, format!("the request's header fields are longer than {max} bytes in all\n"))
    }
}

enum Parse {
    Done(ParsedHead, usize),
    Partial,
    Bad(String),
    TooManyHeaders,
}

fn parse(buf: &[u8], limits: Limits) -> Parse {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(used)) => {
            let header = |name: &str| req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
            let connection = header("connection").map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
            // HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes unless asked.
            let keep_alive = match req.version {
                Some(1) => connection.as_deref() != Some("close"),
                _ => connection.as_deref() == Some("keep-alive"),
            };
            let has_body = header("transfer-encoding").is_some()
                || header("content-length").is_some_and(|v| v.iter().any(|&b| b != b'0' && !b.is_ascii_whitespace()));
            let target = req.path.unwrap_or("/");
            let head = ParsedHead {
                method: req.method.unwrap_or("").to_string(),
                path: target.split('?').next().unwrap_or("/").to_string(),
                keep_alive,
                has_body,
            };
            Parse::Done(head, used)
        }
        Ok(httparse::Status::Partial) => Parse::Partial,
        Err(httparse::Error::TooManyHeaders) => Parse::TooManyHeaders,
        Err(e) => Parse::Bad(e.to_string()),
    }
}

/// The handler's answer, or the refusal of what a read-only server does not take; and
/// whether the connection stays open after it.
fn answer(head: &ParsedHead, handler: &Handler) -> (Response, bool) {
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        return (Response::text(405, "read-only: GET and HEAD only\n"), false);
    }
    if head.has_body {
        // Its body would be read as the next request: close instead.
        return (Response::text(413, "a GET or HEAD request takes no body\n"), false);
    }
    (handler(&Request { method: head.method.clone(), path: head.path.clone() }), head.keep_alive)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn write_response(stream: &mut TcpStream, r: &Response, head_only: bool, keep_alive: bool) -> io::Result<()> {
    let allow = if r.status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{allow}Connection: {}\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(r.body.as_bytes())?;
    }
    stream.flush()
}

/// How much of a refused request's rest `linger` reads and drops before it gives up.
const LINGER_BYTES: usize = 1 << 20;

/// Close our side for writing and drop what the client still sends (at most
/// `LINGER_BYTES`, for at most `idle`), so it reads the refusal before the connection ends.
fn linger(mut stream: TcpStream, idle: Duration) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + idle;
    let mut sink = [0u8; 8192];
    let mut dropped = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero() && dropped < LINGER_BYTES) {
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => dropped += n,
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
