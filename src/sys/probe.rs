//! Health-check probes with hard timeouts: TCP connect, HTTP GET, and commands (killed, by PID,
//! when they overrun). Each returns `Ok(())` or a one-line reason for the log.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Connect within `timeout`.
pub fn tcp(addr: IpAddr, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let sa = SocketAddr::new(addr, port);
    TcpStream::connect_timeout(&sa, timeout).map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => format!("connection to {sa} refused"),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            format!("no answer from {sa} within {} ms", timeout.as_millis())
        }
        _ => format!("connecting to {sa}: {e}"),
    })
}

/// What an HTTP check expects.
pub struct HttpExpect<'a> {
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub status: u16,
    pub body: Option<&'a str>,
}

/// At most this much of a response is read.
const MAX_RESPONSE: usize = 64 * 1024;

/// `GET path` over plain HTTP/1.0 (the server closes the connection: no chunking to parse), all
/// within `timeout`.
pub fn http(
    addr: IpAddr,
    port: u16,
    want: &HttpExpect<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let mut s = tcp(addr, port, timeout)?;
    let host = match want.host {
        Some(h) => h.to_string(),
        None => SocketAddr::new(addr, port).to_string(),
    };
    let left = |start: Instant| {
        timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1))
    };
    let _ = s.set_write_timeout(Some(left(start)));
    let req = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lbctl-healthcheck\r\nConnection: close\r\n\r\n",
        want.path
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("sending the request to {addr}:{port}: {e}"))?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if start.elapsed() >= timeout {
            return Err(format!(
                "no complete answer within {} ms",
                timeout.as_millis()
            ));
        }
        let _ = s.set_read_timeout(Some(left(start)));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                if resp.len() >= MAX_RESPONSE {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "no complete answer within {} ms",
                    timeout.as_millis()
                ))
            }
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&resp);
    let status_line = text.lines().next().unwrap_or("");
    let status: Option<u16> = status_line
        .strip_prefix("HTTP/")
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    match status {
        None => {
            return Err(format!(
                "not an HTTP answer: '{}'",
                status_line.chars().take(60).collect::<String>()
            ))
        }
        Some(c) if c != want.status => {
            return Err(format!("HTTP status {c}, expected {}", want.status))
        }
        Some(_) => {}
    }
    if let Some(needle) = want.body {
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        if !body.contains(needle) {
            return Err(format!("body does not contain '{needle}'"));
        }
    }
    Ok(())
}

/// Run a command; exit 0 within `timeout` = healthy. Overrunning commands are killed (their
/// PID, then reaped). stdout/stderr are discarded except the last line of stderr for the log.
pub fn exec(command: &[String], env: &[(&str, String)], timeout: Duration) -> Result<(), String> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", command[0]))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if status.success() {
                    return Ok(());
                }
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let last = err.lines().last().unwrap_or("").trim().to_string();
                let code = status
                    .code()
                    .map(|c| format!("exit {c}"))
                    .unwrap_or_else(|| "killed by a signal".into());
                return Err(if last.is_empty() {
                    format!("{} failed ({code})", command[0])
                } else {
                    format!("{} failed ({code}): {last}", command[0])
                });
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {} ms (killed)",
                    command[0],
                    timeout.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {}: {e}", command[0])),
        }
    }
}
