//! Health-check probes with hard timeouts: TCP connect, HTTP GET, commands (killed, by PID,
//! when they overrun), and the UDP DSR probe. Each returns `Ok(())` or a one-line reason for the
//! log (the UDP DSR probe returns what it saw).
//!
//! The UDP DSR probe is the UDP twin of [`rawpkt::dsr_probe`]:
//! one datagram to VIP:port, addressed to the backend's MAC, from the balancer's own address,
//! over the same `AF_PACKET` socket. A backend that has the VIP on `lo` takes it: either its
//! server answers *from the VIP*, or, with nothing listening, the kernel answers ICMP port
//! unreachable *from the VIP*, quoting our datagram. Both prove the VIP is there. A backend
//! without the VIP drops the datagram: no answer. (The answers never reach a socket on the
//! balancer, where the VIP is local: they are read from the packet socket.) The payload is a DNS
//! query for `. NS` on port 53, so DNS servers, which ignore junk, answer; elsewhere a line of
//! text, which echo-style servers return.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
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

/// Send `payload` in one UDP datagram to addr:port and return the first answer, all within
/// `timeout`. An ICMP port unreachable is reported as such.
pub fn udp_exchange(
    addr: IpAddr,
    port: u16,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let sa = SocketAddr::new(addr, port);
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = std::net::UdpSocket::bind(local).map_err(|e| format!("UDP socket: {e}"))?;
    sock.connect(sa)
        .map_err(|e| format!("connecting to {sa}: {e}"))?;
    sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(|e| e.to_string())?;
    sock.send(payload)
        .map_err(|e| format!("sending to udp {sa}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(format!(
            "udp {sa}: ICMP port unreachable (nothing listens there)"
        )),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(format!(
                "no UDP answer from {sa} within {} ms",
                timeout.as_millis()
            ))
        }
        Err(e) => Err(format!("udp {sa}: {e}")),
    }
}

/// What an HTTP check expects.
pub struct HttpExpect<'a> {
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub status: u16,
    pub body: Option<&'a str>,
    /// HTTPS: the SNI name (None: the address) and whether the certificate is verified.
    pub tls: Option<(Option<&'a str>, bool)>,
}

/// A check's connection: plain TCP or TLS over it.
enum Conn {
    Plain(TcpStream),
    Tls(Box<crate::sys::tls::Tls>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => t.tcp(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// At most this much of a response is read.
const MAX_RESPONSE: usize = 64 * 1024;

/// `GET path` over HTTP/1.0 (the server closes the connection: no chunking to parse), plain
/// or over TLS, all within `timeout`.
pub fn http(
    addr: IpAddr,
    port: u16,
    want: &HttpExpect<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let t = tcp(addr, port, timeout)?;
    let mut s = match want.tls {
        None => Conn::Plain(t),
        Some((sni, verify)) => Conn::Tls(Box::new(crate::sys::tls::Tls::connect(
            t, addr, sni, verify,
        )?)),
    };
    let host = match (want.host, want.tls) {
        (Some(h), _) => h.to_string(),
        (None, Some((Some(sni), _))) => sni.to_string(),
        (None, _) => SocketAddr::new(addr, port).to_string(),
    };
    let left = |start: Instant| {
        timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1))
    };
    let _ = s.tcp().set_write_timeout(Some(left(start)));
    let _ = s.tcp().set_read_timeout(Some(left(start)));
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
        let _ = s.tcp().set_read_timeout(Some(left(start)));
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
            // A TLS server that closes without close_notify: what was read is the answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !resp.is_empty() => break,
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
    match exec_status(command, env, timeout)? {
        (0, _) => Ok(()),
        (code, last) if last.is_empty() => Err(format!("{} failed (exit {code})", command[0])),
        (code, last) => Err(format!("{} failed (exit {code}): {last}", command[0])),
    }
}

/// Run `command` like [`exec`]; Ok(exit code, last line of its stderr) when it exited by itself,
/// Err when it could not run, was killed by a signal or overran `timeout` (then killed).
pub fn exec_status(
    command: &[String],
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<(i32, String), String> {
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
                let mut err = String::new();
                if !status.success() {
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                }
                let last = err.lines().last().unwrap_or("").trim().to_string();
                return match status.code() {
                    Some(c) => Ok((c, last)),
                    None if last.is_empty() => {
                        Err(format!("{} failed (killed by a signal)", command[0]))
                    }
                    None => Err(format!(
                        "{} failed (killed by a signal): {last}",
                        command[0]
                    )),
                };
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

// =============================================================================================
// UDP DSR probe
// =============================================================================================

use crate::sys::capture::{L3, L4};
use crate::sys::rawpkt::{self, DsrProbe, RawSocket};

/// What the UDP DSR probe of one backend saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpDsrVerdict {
    /// A UDP answer from VIP:port: the backend serves the VIP.
    Reply,
    /// ICMP port unreachable from the VIP, quoting the probe: the VIP is there (whether a
    /// server listens is the regular check's business).
    PortUnreachable,
    /// An answer to the probe came from this address instead of the VIP: the backend took the
    /// datagram, but its server answers from the wrong address (clients drop such answers).
    WrongSource(IpAddr),
    /// Nothing came back: the backend does not take traffic for the VIP.
    NoAnswer,
}

/// The probe's datagram, as sent: the fields its answers are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpProbeId {
    pub lb_ip: IpAddr,
    pub sport: u16,
    pub vip: IpAddr,
    pub port: u16,
}

/// The payload for `port`: a DNS query (`. IN NS`, recursion desired) on 53, else a text line.
pub fn udp_probe_payload(port: u16, id: u16) -> Vec<u8> {
    if port == 53 {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(&[0, 0, 2, 0, 1]); // root name, type NS, class IN
        q
    } else {
        b"lbctl DSR probe\n".to_vec()
    }
}

/// Where the IP header starts in an Ethernet frame (after an optional 802.1Q/802.1ad tag).
fn ip_offset(frame: &[u8]) -> usize {
    match frame.get(12..14) {
        Some([0x81, 0x00]) | Some([0x88, 0xa8]) => 18,
        _ => 14,
    }
}

/// Does the packet quoted in an ICMP error (starting at `q`) carry our probe?
fn quotes_probe(q: &[u8], id: &UdpProbeId) -> bool {
    let be16 = |b: &[u8], i: usize| b.get(i..i + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
    let (src, dst, proto, udp) = match id.vip {
        IpAddr::V4(_) => {
            if q.len() < 20 || q[0] >> 4 != 4 {
                return false;
            }
            let ihl = usize::from(q[0] & 0x0f) * 4;
            let src: [u8; 4] = q[12..16].try_into().unwrap_or_default();
            let dst: [u8; 4] = q[16..20].try_into().unwrap_or_default();
            (
                IpAddr::from(Ipv4Addr::from(src)),
                IpAddr::from(Ipv4Addr::from(dst)),
                q[9],
                ihl,
            )
        }
        IpAddr::V6(_) => {
            if q.len() < 40 || q[0] >> 4 != 6 {
                return false;
            }
            let src: [u8; 16] = q[8..24].try_into().unwrap_or_default();
            let dst: [u8; 16] = q[24..40].try_into().unwrap_or_default();
            (
                IpAddr::from(Ipv6Addr::from(src)),
                IpAddr::from(Ipv6Addr::from(dst)),
                q[6],
                40,
            )
        }
    };
    src == id.lb_ip
        && dst == id.vip
        && proto == 17
        && be16(q, udp) == Some(id.sport)
        && be16(q, udp + 2) == Some(id.port)
}

/// What a received frame says about the probe `id`, if it is an answer to it.
pub fn classify_udp_answer(frame: &[u8], id: &UdpProbeId) -> Option<UdpDsrVerdict> {
    let decoded = crate::sys::capture::decode(frame)?;
    let L3::Ip { src, dst, l4, .. } = decoded.3 else {
        return None;
    };
    if dst != id.lb_ip {
        return None;
    }
    match l4 {
        L4::Udp { sport, dport, .. } if dport == id.sport && sport == id.port => {
            Some(if src == id.vip {
                UdpDsrVerdict::Reply
            } else {
                UdpDsrVerdict::WrongSource(src)
            })
        }
        L4::Icmp { typ: 3, code: 3 } | L4::Icmp6 { typ: 1, code: 4 } => {
            let ip = ip_offset(frame);
            let icmp = match id.vip {
                IpAddr::V4(_) => ip + usize::from(frame.get(ip)? & 0x0f) * 4,
                IpAddr::V6(_) => ip + 40,
            };
            if !quotes_probe(frame.get(icmp + 8..)?, id) {
                return None;
            }
            Some(if src == id.vip {
                UdpDsrVerdict::PortUnreachable
            } else {
                UdpDsrVerdict::WrongSource(src)
            })
        }
        _ => None,
    }
}

/// Send one datagram to VIP:port through the backend and wait for an answer (module docs).
pub fn dsr_udp(p: &DsrProbe) -> crate::error::Result<UdpDsrVerdict> {
    if p.lb_ip.is_ipv4() != p.vip.is_ipv4() {
        return Err(crate::error::Error::Usage(format!(
            "DSR probe: {} and {} are different address families",
            p.lb_ip, p.vip
        )));
    }
    let ethertype: u16 = if p.vip.is_ipv4() { 0x0800 } else { 0x86dd };
    let mut s = RawSocket::open(&p.iface, ethertype)?;
    let r = rawpkt::pseudo_random();
    let id = UdpProbeId {
        lb_ip: p.lb_ip,
        sport: 40_000 + (r % 20_000) as u16,
        vip: p.vip,
        port: p.port,
    };
    s.send(&rawpkt::udp_frame(
        p.lb_mac,
        p.backend_mac,
        (p.lb_ip, id.sport),
        (p.vip, p.port),
        &udp_probe_payload(p.port, (r >> 16) as u16),
    ))?;
    let deadline = Instant::now() + p.timeout;
    let mut wrong = None;
    while let Some(pkt) = s.recv_until(deadline)? {
        match classify_udp_answer(&pkt.frame, &id) {
            Some(UdpDsrVerdict::WrongSource(a)) => wrong = Some(a),
            Some(v) => return Ok(v),
            None => {}
        }
    }
    Ok(wrong.map_or(UdpDsrVerdict::NoAnswer, UdpDsrVerdict::WrongSource))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LB_MAC: rawpkt::Mac = [2, 0, 0, 0, 0, 2];
    const BE_MAC: rawpkt::Mac = [2, 0, 0, 0, 0, 0x11];

    fn id(lb: &str, vip: &str) -> UdpProbeId {
        UdpProbeId {
            lb_ip: lb.parse().unwrap(),
            sport: 45_000,
            vip: vip.parse().unwrap(),
            port: 53,
        }
    }

    /// The probe datagram as the balancer sends it, without its Ethernet header.
    fn probe_packet(id: &UdpProbeId) -> Vec<u8> {
        rawpkt::udp_frame(
            LB_MAC,
            BE_MAC,
            (id.lb_ip, id.sport),
            (id.vip, id.port),
            &udp_probe_payload(id.port, 7),
        )[14..]
            .to_vec()
    }

    /// An ICMP(v6) port unreachable from `from` to the balancer, quoting `quoted`.
    fn unreachable(id: &UdpProbeId, from: IpAddr, quoted: &[u8]) -> Vec<u8> {
        let (proto, typ, code) = if id.vip.is_ipv4() {
            (1, 3, 3)
        } else {
            (58, 1, 4)
        };
        let mut icmp = vec![typ, code, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(quoted);
        let c = if id.vip.is_ipv4() {
            // ICMPv4: checksum over the message only.
            let mut acc = 0u32;
            for ch in icmp.chunks(2) {
                acc += u32::from(u16::from_be_bytes([ch[0], *ch.get(1).unwrap_or(&0)]));
            }
            while acc >> 16 != 0 {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            !(acc as u16)
        } else {
            rawpkt::l4_checksum(from, id.lb_ip, 58, &icmp)
        };
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let (et, ip) = rawpkt::ip_packet(from, id.lb_ip, proto, 64, &icmp);
        rawpkt::eth(LB_MAC, BE_MAC, et, &ip)
    }

    #[test]
    fn a_reply_from_the_vip_passes_and_from_elsewhere_is_named() {
        for (lb, vip, rip) in [
            ("198.18.0.2", "198.18.0.100", "198.18.0.11"),
            ("2001:db8::2", "2001:db8::100", "2001:db8::11"),
        ] {
            let id = id(lb, vip);
            let reply = |from: &str| {
                rawpkt::udp_frame(
                    BE_MAC,
                    LB_MAC,
                    (from.parse().unwrap(), 53),
                    (id.lb_ip, id.sport),
                    b"answer",
                )
            };
            assert_eq!(
                classify_udp_answer(&reply(vip), &id),
                Some(UdpDsrVerdict::Reply)
            );
            assert_eq!(
                classify_udp_answer(&reply(rip), &id),
                Some(UdpDsrVerdict::WrongSource(rip.parse().unwrap()))
            );
            // Another port's datagram is not an answer.
            let other =
                rawpkt::udp_frame(BE_MAC, LB_MAC, (id.vip, 53), (id.lb_ip, id.sport + 1), b"x");
            assert_eq!(classify_udp_answer(&other, &id), None);
        }
    }

    #[test]
    fn port_unreachable_counts_only_from_the_vip_and_quoting_the_probe() {
        for (lb, vip) in [
            ("198.18.0.2", "198.18.0.100"),
            ("2001:db8::2", "2001:db8::100"),
        ] {
            let id = id(lb, vip);
            let q = probe_packet(&id);
            assert_eq!(
                classify_udp_answer(&unreachable(&id, id.vip, &q), &id),
                Some(UdpDsrVerdict::PortUnreachable),
                "{vip}"
            );
            // Quoting another datagram (another source port): not ours.
            let other = UdpProbeId {
                sport: id.sport + 1,
                ..id
            };
            assert_eq!(
                classify_udp_answer(&unreachable(&id, id.vip, &probe_packet(&other)), &id),
                None
            );
            // A truncated quote is not a match either (and does not panic).
            assert_eq!(
                classify_udp_answer(&unreachable(&id, id.vip, &q[..10]), &id),
                None
            );
        }
    }

    #[test]
    fn dns_port_gets_a_dns_query() {
        let q = udp_probe_payload(53, 0x1234);
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(q.len(), 12 + 5);
        assert_eq!(&q[4..6], &[0, 1], "one question");
        assert!(udp_probe_payload(9000, 1).starts_with(b"lbctl"));
    }
}
