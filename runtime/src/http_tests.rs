//! The bounded server answered by a plain TCP client, byte for byte as a browser or curl
//! would send, including what an abusive one sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Limits, Response, Server, Serving};

fn serve(limits: Limits) -> Serving {
    let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap().with_limits(limits);
    server
        .serve(Arc::new(|req: &super::Request| match req.path.as_str() {
            "/" => Response::text(200, format!("hello {}\n", req.method)),
            _ => Response::text(404, "no such page\n"),
        }))
        .unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Everything the server sends until it closes the connection.
fn read_all(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Send `request` while reading the answer, as a browser does: the server may answer and
/// close before taking all of an oversized request (that is the point), and what it said
/// must have been read before the close resets the connection.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let s = connect(addr);
    let mut writer = s.try_clone().unwrap();
    let request = request.to_vec();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let got = read_all(s);
    let _ = sending.join();
    got
}

#[test]
fn a_get_is_answered_and_a_head_has_the_length_but_no_body() {
    let server = serve(Limits::default());
    let got = exchange(server.addr, b"GET /?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nhello GET\n"), "{got}");
    let got = exchange(server.addr, b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(got.contains("Content-Length: 11\r\n") && got.ends_with("\r\n\r\n"), "{got}");
    let got = exchange(server.addr, b"GET /nope HTTP/1.0\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 404"), "{got}");
}

#[test]
fn requests_on_one_connection_are_answered_in_turn_even_when_pipelined() {
    let server = serve(Limits::default());
    let got = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 3, "{got}");
    assert_eq!(got.matches("hello GET").count(), 2, "{got}");
}

#[test]
fn an_oversized_request_line_or_header_is_refused_after_reading_no_more_than_the_limit() {
    let server = serve(Limits::default());
    let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1 << 20));
    let got = exchange(server.addr, long_target.as_bytes());
    assert!(got.starts_with("HTTP/1.1 414 URI Too Long"), "{}", &got[..got.len().min(200)]);
    let long_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(50 << 20));
    let started = Instant::now();
    let got = exchange(server.addr, long_header.as_bytes());
    assert!(got.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{}", &got[..got.len().min(200)]);
    assert!(started.elapsed() < Duration::from_secs(60), "the server read the whole 50 MB header");
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(100));
    let got = exchange(server.addr, many.as_bytes());
    assert!(got.starts_with("HTTP/1.1 431") && got.contains("more than 64 header fields"), "{got}");
}

#[test]
fn what_a_read_only_server_does_not_take_is_refused_and_the_connection_closed() {
    let server = serve(Limits::default());
    let got = exchange(server.addr, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 405") && got.contains("Allow: GET, HEAD"), "{got}");
    assert_eq!(got.matches("HTTP/1.1").count(), 1, "the body was not read as a request: {got}");
    let got = exchange(server.addr, b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    let got = exchange(server.addr, b"G\x01T / HTTP/1.1\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
}

#[test]
fn a_silent_client_is_dropped_and_connections_beyond_the_cap_are_told_to_retry() {
    let limits = Limits { idle: Duration::from_millis(300), max_connections: 1, ..Limits::default() };
    let server = serve(limits);
    let silent = connect(server.addr);
    std::thread::sleep(Duration::from_millis(50));
    let got = exchange(server.addr, b"GET / HTTP/1.1\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    let started = Instant::now();
    assert_eq!(read_all(silent), "", "a silent connection gets no answer, only its end");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    // The slot is free again.
    let mut ok = String::new();
    for _ in 0..50 {
        ok = exchange(server.addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        if ok.starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}
