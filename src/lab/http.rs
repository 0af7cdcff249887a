//! A tiny HTTP/1.0 server and client, so the lab needs no web server, curl or downloads.
//!
//! The server (`lbctl lab serve --name be1`) answers `GET /` (and `HEAD /`) with 200 and the body
//! `be1\n`, `POST /` the same after reading and discarding the upload (`lab traffic --skewed`),
//! anything else with 404. It listens on `[::]` (dual-stack, so the VIP and the real IP
//! of both families are served) or on 0.0.0.0 when IPv6 is off, with a fixed pool of threads each
//! accepting on the same socket: bounded, and no per-connection threads. It keeps the default
//! SIGTERM action, so stopping it by PID is immediate.
//!
//! The client opens a new connection per request, so each request has a new source port, which
//! is what a flow-hashing balancer spreads on.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::Context as _;

use crate::error::{Error, Result};
use crate::usage;

/// Threads accepting connections.
pub const WORKERS: usize = 4;
/// Longest request head the server reads.
const MAX_HEAD: usize = 8 * 1024;
/// Per-connection I/O timeout on the server.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest upload `POST /` accepts.
pub const MAX_UPLOAD: u64 = 64 << 20;
/// How long one write to a client may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// A server name: what `GET /` answers. Printable ASCII without spaces, at most 64 bytes.
pub fn validate_server_name(name: &str) -> Result<()> {
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(usage!(
            "invalid server name '{name}': 1-64 printable characters, no spaces"
        ))
    }
}

/// Bind the listening socket: `[::]:port` (dual-stack), else `0.0.0.0:port`.
pub fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
        .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
        .map_err(|e| {
            Error::Runtime(anyhow::Error::new(e).context(format!("listening on port {port}")))
        })
}

/// Serve forever on `listener` with [`WORKERS`] accepting threads; each connection gets its own
/// thread, so slow long downloads (`lab traffic --long`) never starve the health checks.
pub fn serve(listener: TcpListener, name: &str) -> Result<()> {
    let mut threads = Vec::new();
    for i in 0..WORKERS {
        let l = listener.try_clone().context("cloning the listener")?;
        let name = name.to_string();
        threads.push(
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || loop {
                    match l.accept() {
                        Ok((stream, _)) => {
                            let name = name.clone();
                            let spawned = std::thread::Builder::new()
                                .name("http-conn".into())
                                .spawn(move || {
                                    if let Err(e) = handle(stream, &name) {
                                        eprintln!("lbctl lab serve: {e}");
                                    }
                                });
                            if let Err(e) = spawned {
                                eprintln!("lbctl lab serve: cannot start a thread: {e}");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("lbctl lab serve: accept: {e}");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
                .context("starting a server thread")?,
        );
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// The path of the long download (`lab traffic --long`): [`BIG_LEN`] bytes of [`big_body`].
pub const BIG_PATH: &str = "/big";
/// Its length.
pub const BIG_LEN: usize = 1 << 20;

/// The long download's body: a fixed pattern (a 251-byte cycle, prime so it does not line up
/// with segment sizes), so the client can check every byte.
pub fn big_body() -> Vec<u8> {
    (0..BIG_LEN).map(|i| (i % 251) as u8).collect()
}

/// The response to one request head.
fn respond(head: &str, name: &str) -> (u16, Vec<u8>) {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, reason, body) = match (method, path) {
        ("GET" | "HEAD" | "POST", "/") => (200, "OK", format!("{name}\n").into_bytes()),
        ("GET" | "HEAD", BIG_PATH) => (200, "OK", big_body()),
        ("GET" | "HEAD" | "POST", _) => (404, "Not Found", b"not found\n".to_vec()),
        _ => (405, "Method Not Allowed", b"method not allowed\n".to_vec()),
    };
    let mut out = format!(
        "HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         X-Backend: {name}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(&body);
    }
    (status, out)
}

fn handle(mut stream: TcpStream, name: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    // Long downloads through paced backends can stall for seconds (tbf drops, RTO backoff,
    // a failover): only a client gone for a minute is given up.
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        // A bare "\n\n" ends the head too (hand-typed requests).
        if head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    if head.is_empty() {
        // A TCP health check: connect and close.
        return Ok(());
    }
    if let Some(len) = upload_len(&head) {
        // An upload: read and discard the body (part of it may have come with the head).
        let at = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(head.len(), |p| p + 4);
        let got = (head.len() - at) as u64;
        let mut rest = (&mut stream).take(len.saturating_sub(got));
        std::io::copy(&mut rest, &mut std::io::sink())?;
    }
    let (_, out) = respond(&String::from_utf8_lossy(&head), name);
    stream.write_all(&out)?;
    stream.flush()
}

/// The `Content-Length` of a `POST` head (None: not a POST, no length, or over [`MAX_UPLOAD`]).
fn upload_len(head: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(head);
    if !text.starts_with("POST ") {
        return None;
    }
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .filter(|n| *n <= MAX_UPLOAD)
}

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// The client's source port for this request.
    pub local_port: u16,
}

/// `GET path` from `addr` on a new connection (call it on a thread inside the client's
/// namespace).
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<Reply> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    exchange(s, addr, "GET", path, 0, timeout)
}

/// `POST /` with a body of `len` bytes to `addr` on a new connection from source port
/// `from_port` (bound with `SO_REUSEADDR`, so a port an earlier, closed request used can be used
/// again): the same client address and port hash to the same backend.
pub fn post_from(
    addr: SocketAddr,
    from_port: u16,
    len: usize,
    timeout: Duration,
) -> std::io::Result<Reply> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, from_port).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, from_port).into(),
    };
    sock.bind(&local.into())?;
    sock.connect_timeout(&addr.into(), timeout)?;
    exchange(sock.into(), addr, "POST", "/", len, timeout)
}

/// Send one request (`body_len` bytes of body) on `s` and read the response to the end.
fn exchange(
    mut s: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body_len: usize,
    timeout: Duration,
) -> std::io::Result<Reply> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let local_port = s.local_addr()?.port();
    let host = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let length = if method == "POST" {
        format!("Content-Length: {body_len}\r\n")
    } else {
        String::new()
    };
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lbctl-lab\r\n{length}Connection: close\r\n\r\n"
    )?;
    let chunk = [b'u'; 64 * 1024];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n])?;
        left -= n;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP response head")
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad status line"))?;
    Ok(Reply {
        status,
        body: body.to_string(),
        local_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let (s, out) = respond("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "be1");
        assert_eq!(s, 200);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\r\n\r\nbe1\n"), "{text}");
        assert!(text.contains("Content-Length: 4\r\n"));
        assert_eq!(respond("GET /x HTTP/1.0\r\n\r\n", "be1").0, 404);
        assert_eq!(respond("GET /?a=1 HTTP/1.0\r\n\r\n", "be1").0, 200);
        assert_eq!(respond("POST / HTTP/1.0\r\n\r\n", "be1").0, 200);
        assert_eq!(respond("PUT / HTTP/1.0\r\n\r\n", "be1").0, 405);
        assert_eq!(
            upload_len(b"POST / HTTP/1.0\r\ncontent-length: 12\r\n\r\nab"),
            Some(12)
        );
        assert_eq!(
            upload_len(b"GET / HTTP/1.0\r\nContent-Length: 12\r\n\r\n"),
            None
        );
        assert_eq!(upload_len(b"POST / HTTP/1.0\r\n\r\n"), None);
        let (s, head_only) = respond("HEAD / HTTP/1.0\r\n\r\n", "be1");
        assert_eq!(s, 200);
        assert!(String::from_utf8(head_only).unwrap().ends_with("\r\n\r\n"));
        let (s, big) = respond("GET /big HTTP/1.0\r\n\r\n", "be1");
        assert_eq!(s, 200);
        let at = big.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(big[at..], big_body()[..]);
        assert_eq!(big_body().len(), BIG_LEN);
        let head = String::from_utf8_lossy(&big[..at]).into_owned();
        assert!(
            head.contains(&format!("Content-Length: {BIG_LEN}\r\n")),
            "{head}"
        );
        assert!(validate_server_name("be1").is_ok());
        assert!(validate_server_name("a b").is_err());
        assert!(validate_server_name("").is_err());
    }
}
