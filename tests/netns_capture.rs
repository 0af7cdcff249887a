//! `lbctl capture` end to end, with real traffic between two namespaces.
//!
//! A client (`eth0` 02:00:00:00:00:10, 198.18.0.10/24) and a server (`eth0` 02:00:00:00:00:11,
//! 198.18.0.11/24) share a veth. `lbctl capture` runs in the server namespace in the background
//! while the client pings (which starts with an ARP exchange, as the neighbour tables are
//! flushed) and opens a TCP connection to a closed port (SYN in, RST out). The tests check what a
//! DSR diagnosis relies on: the direction of each frame (`sll_pkttype`), the MACs, ARP
//! who-has/is-at, ICMP echo and TCP flags; then that tcpdump reads the pcap written with `-w`,
//! and that `lbctl capture -r` prints the same packets back.
//!
//! VLAN tags: veth moves an 802.1Q tag into skb metadata before the packet taps run, so the tag
//! is only visible through PACKET_AUXDATA. The client sends tagged frames from a raw socket (on
//! a thread that entered the client namespace), which needs no 8021q module; the capture must
//! show the tag and the pcap must contain it.
//!
//! Exactness: `live_output_matches_tcpdump_line_by_line` runs `lbctl capture` and `tcpdump -e -n`
//! side by side with the same filter on a named Ethernet interface, on `any` (Linux cooked v2)
//! and on a TUN device (raw IP), and compares their lines (timestamps aside); the pcaps lbctl
//! writes (`-i any`: SLL2, pcap and pcapng) are read back by both and compared too.
//!
//! The background capture is synchronised on its `listening on …` line, stopped by its count, its
//! duration or SIGINT (by PID, our own child), and killed by its handle if a test fails first.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const CLIENT_MAC: &str = "02:00:00:00:00:10";
const SERVER_MAC: &str = "02:00:00:00:00:11";
const CLIENT_IP: &str = "198.18.0.10";
const SERVER_IP: &str = "198.18.0.11";
const BROADCAST: &str = "ff:ff:ff:ff:ff:ff";

struct Lab {
    client: Netns,
    server: Netns,
}

/// client eth0 ⟷ server eth0, both neighbour tables empty so the first packet needs ARP.
fn lab(tag: &str) -> Lab {
    let client = Netns::new(&format!("{tag}-c"));
    let server = Netns::new(&format!("{tag}-s"));
    link(
        End {
            ns: &client,
            dev: "eth0",
            mac: CLIENT_MAC,
            cidr: &format!("{CLIENT_IP}/24"),
        },
        End {
            ns: &server,
            dev: "eth0",
            mac: SERVER_MAC,
            cidr: &format!("{SERVER_IP}/24"),
        },
    );
    client.settle();
    server.settle();
    for ns in [&client, &server] {
        ns.ip(&["neigh", "flush", "all"]);
    }
    Lab { client, server }
}

// ---------------------------------------------------------------------------------------------
// A capture running in the background
// ---------------------------------------------------------------------------------------------

fn line_reader(pipe: impl std::io::Read + Send + 'static) -> (Receiver<String>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, h)
}

/// `lbctl … capture …` spawned with piped output. Dropping it kills the child (by its handle).
struct Bg {
    cmd: String,
    child: Option<Child>,
    out_rx: Receiver<String>,
    err_rx: Receiver<String>,
    stdout: Vec<String>,
    stderr: Vec<String>,
    readers: Vec<JoinHandle<()>>,
}

impl Bg {
    fn spawn(lb: &Lbctl, args: &[&str]) -> Bg {
        let argv = lb.argv(args);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .env("LBCTL_RUN_DIR", lb.run_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let (out_rx, h1) = line_reader(child.stdout.take().expect("piped"));
        let (err_rx, h2) = line_reader(child.stderr.take().expect("piped"));
        Bg {
            cmd: argv.join(" "),
            child: Some(child),
            out_rx,
            err_rx,
            stdout: Vec::new(),
            stderr: Vec::new(),
            readers: vec![h1, h2],
        }
    }

    fn drain(&mut self) {
        self.stdout.extend(self.out_rx.try_iter());
        self.stderr.extend(self.err_rx.try_iter());
    }

    fn report(&mut self) -> String {
        self.drain();
        format!(
            "$ {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.stdout.join("\n"),
            self.stderr.join("\n")
        )
    }

    /// Wait until the socket is bound (the `listening on` line), or fail.
    #[track_caller]
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(line) = self.err_rx.recv_timeout(Duration::from_millis(50)) {
                let ready = line.starts_with("listening on ");
                self.stderr.push(line);
                if ready {
                    return;
                }
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                thread::sleep(Duration::from_millis(100));
                panic!("capture exited before listening\n{}", self.report());
            }
        }
        panic!("capture did not start listening\n{}", self.report());
    }

    /// Wait until stdout has at least `n` lines, or fail.
    #[track_caller]
    fn wait_lines(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.stdout.len() < n && Instant::now() < deadline {
            if let Ok(line) = self.out_rx.recv_timeout(Duration::from_millis(50)) {
                self.stdout.push(line);
            }
        }
        assert!(
            self.stdout.len() >= n,
            "expected {n} packet lines\n{}",
            self.report()
        );
    }

    /// SIGINT, as Ctrl-C would send (to our own child, by PID).
    fn interrupt(&self) {
        let pid = self.child.as_ref().expect("running").id() as libc::pid_t;
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGINT) };
        assert_eq!(rc, 0, "kill -INT {pid}");
    }

    /// Wait for the exit (killing it after `timeout`) and collect everything it printed.
    fn finish(mut self, timeout: Duration) -> Out {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        let (status, timed_out) = loop {
            match child.try_wait().expect("try_wait") {
                Some(s) => break (s, false),
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    break (child.wait().expect("wait"), true);
                }
                None => thread::sleep(Duration::from_millis(20)),
            }
        };
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
        self.drain();
        let mut stderr = self.stderr.join("\n");
        if timed_out {
            stderr.push_str(&format!("\n[test] killed after {timeout:?}"));
        }
        Out {
            cmd: self.cmd.clone(),
            code: if timed_out {
                -1
            } else {
                status.code().unwrap_or(-2)
            },
            stdout: self.stdout.join("\n"),
            stderr,
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn ndjson(out: &Out) -> Vec<Value> {
    out.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{out}")))
        .collect()
}

/// The packets of `v` for which `pred` holds.
fn find(v: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<(usize, &Value)> {
    v.iter().enumerate().filter(|(_, p)| pred(p)).collect()
}

/// Exactly one packet matching `pred`.
#[track_caller]
fn one<'a>(
    v: &'a [Value],
    what: &str,
    pred: impl Fn(&Value) -> bool,
    out: &Out,
) -> (usize, &'a Value) {
    let found = find(v, pred);
    assert_eq!(found.len(), 1, "expected exactly one {what}\n{out}");
    found[0]
}

/// `tcpdump -n -e -r FILE` text, or `None` (with a loud note) when tcpdump is not installed.
fn tcpdump_read(pcap: &Path) -> Option<String> {
    if find_tool("tcpdump").is_none() {
        eprintln!(
            "NOTE: tcpdump is not installed: the pcap was NOT checked with an independent reader"
        );
        return None;
    }
    let path = pcap.to_string_lossy().into_owned();
    let out = run_cmd(&["tcpdump", "-n", "-e", "-r", &path], &[], None);
    assert!(out.success(), "tcpdump could not read our pcap\n{out}");
    Some(out.stdout)
}

/// `tcpdump -n -e -r FILE` run inside `ns` (cooked records name interfaces by index, resolved
/// where tcpdump runs). tcpdump is in the CI packages: required.
fn tcpdump_read_in(ns: &Netns, pcap: &Path) -> String {
    let path = pcap.to_string_lossy().into_owned();
    let out = ns.exec(&["tcpdump", "-n", "-e", "-r", &path]);
    assert!(out.success(), "tcpdump could not read {path}\n{out}");
    out.stdout
}

/// Send raw Ethernet frames out of `dev` in `ns`, from a thread that enters the namespace (the
/// thread exits afterwards, so nothing else moves).
fn send_frames(ns: &Netns, dev: &str, frames: Vec<Vec<u8>>) {
    let path = format!("/run/netns/{}", ns.name());
    let dev = std::ffi::CString::new(dev).unwrap();
    thread::spawn(move || {
        let nsfile = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on this thread only, with a valid namespace descriptor.
        assert_eq!(
            unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns {path}"
        );
        // SAFETY: plain socket/if_nametoindex/sendto/close calls on values we own.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "AF_PACKET socket");
            let ifindex = libc::if_nametoindex(dev.as_ptr());
            assert!(ifindex > 0, "no {dev:?} in {path}");
            for f in &frames {
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_ifindex = ifindex as i32;
                sll.sll_halen = 6;
                sll.sll_addr[..6].copy_from_slice(&f[..6]);
                let n = libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                );
                assert_eq!(n, f.len() as isize, "sendto");
            }
            libc::close(fd);
        }
    })
    .join()
    .expect("sender thread");
}

fn mac_bytes(s: &str) -> Vec<u8> {
    s.split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect()
}

/// An Ethernet ARP request frame, optionally 802.1Q-tagged.
fn arp_request(dst: &str, vlan: Option<u16>, sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = mac_bytes(dst);
    f.extend(mac_bytes(CLIENT_MAC));
    if let Some(id) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend(mac_bytes(CLIENT_MAC));
    f.extend_from_slice(&sender);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// ping (with its ARP exchange) and a refused TCP connection, seen from the server: directions,
/// MACs, ARP, ICMP, TCP flags; then the pcap through tcpdump and `lbctl capture -r`.
#[test]
fn live_capture_directions_arp_icmp_tcp_and_pcap() {
    require_root!();
    let lab = lab("cap");
    let tmp = TempDir::new("cap");
    let pcap = tmp.path().join("server.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let lb = Lbctl::new(&lab.server);
    // ARP request + reply, 2 echo requests + 2 replies, SYN + RST.
    let mut bg = Bg::spawn(
        &lb,
        &[
            "--json",
            "capture",
            "-i",
            "eth0",
            "--host",
            CLIENT_IP,
            "-c",
            "8",
            "--seconds",
            "20",
            "-w",
            &pcap_s,
        ],
    );
    bg.wait_listening();
    lab.client
        .exec_ok(&["ping", "-c", "2", "-i", "0.2", "-W", "2", SERVER_IP]);
    let tcp = lab
        .client
        .exec(&["bash", "-c", &format!("exec 3<>/dev/tcp/{SERVER_IP}/9")]);
    assert!(!tcp.success(), "port 9 should refuse the connection\n{tcp}");
    let out = bg.finish(Duration::from_secs(20));
    out.expect_ok();
    let pkts = ndjson(&out);
    assert_eq!(pkts.len(), 8, "-c 8 must stop after 8 packets\n{out}");
    assert!(out.stderr.contains("8 packets captured"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("8 packets written to {pcap_s}")),
        "{out}"
    );
    for p in &pkts {
        assert_eq!(p["iface"], "eth0", "{p}");
        assert_eq!(p["vlan"], Value::Null, "{p}");
        assert!(p["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{p}");
    }

    // ARP: the client's broadcast request arrives (B), the server's unicast reply leaves (Out).
    let (req_at, _) = one(
        &pkts,
        "ARP request",
        |p| {
            p["proto"] == "arp"
                && p["op"] == "request"
                && p["dir"] == "broadcast"
                && p["src_mac"] == CLIENT_MAC
                && p["dst_mac"] == BROADCAST
                && p["sender_mac"] == CLIENT_MAC
                && p["sender_ip"] == CLIENT_IP
                && p["target_ip"] == SERVER_IP
        },
        &out,
    );
    let (reply_at, _) = one(
        &pkts,
        "ARP reply",
        |p| {
            p["proto"] == "arp"
                && p["op"] == "reply"
                && p["dir"] == "out"
                && p["src_mac"] == SERVER_MAC
                && p["dst_mac"] == CLIENT_MAC
                && p["sender_mac"] == SERVER_MAC
                && p["sender_ip"] == SERVER_IP
                && p["target_mac"] == CLIENT_MAC
                && p["target_ip"] == CLIENT_IP
        },
        &out,
    );
    assert!(req_at < reply_at, "ARP reply before request\n{out}");

    // ICMP echo: requests in (client MAC → server MAC), replies out.
    let requests = find(&pkts, |p| {
        p["proto"] == "icmp"
            && p["icmp_type"] == 8
            && p["dir"] == "in"
            && p["src_mac"] == CLIENT_MAC
            && p["dst_mac"] == SERVER_MAC
            && p["src"] == CLIENT_IP
            && p["dst"] == SERVER_IP
            && p["ttl"] == 64
    });
    let replies = find(&pkts, |p| {
        p["proto"] == "icmp"
            && p["icmp_type"] == 0
            && p["dir"] == "out"
            && p["src_mac"] == SERVER_MAC
            && p["dst_mac"] == CLIENT_MAC
            && p["src"] == SERVER_IP
            && p["dst"] == CLIENT_IP
    });
    assert_eq!((requests.len(), replies.len()), (2, 2), "ICMP echo\n{out}");
    assert!(
        reply_at < requests[0].0,
        "echo request before ARP reply\n{out}"
    );

    // TCP: SYN in, RST+ACK out, acknowledging the SYN's sequence number + 1.
    let (_, syn) = one(
        &pkts,
        "TCP SYN",
        |p| {
            p["proto"] == "tcp"
                && p["flags"] == "S"
                && p["dir"] == "in"
                && p["dport"] == 9
                && p["src_mac"] == CLIENT_MAC
                && p["src"] == CLIENT_IP
        },
        &out,
    );
    let (_, rst) = one(
        &pkts,
        "TCP RST",
        |p| {
            p["proto"] == "tcp"
                && p["flags"] == "R."
                && p["dir"] == "out"
                && p["sport"] == 9
                && p["src_mac"] == SERVER_MAC
                && p["dst"] == CLIENT_IP
        },
        &out,
    );
    assert_eq!(rst["dport"], syn["sport"], "{out}");
    assert_eq!(
        rst["ack"].as_u64(),
        syn["seq"].as_u64().map(|s| (s + 1) & 0xffff_ffff),
        "{out}"
    );
    assert_eq!(syn["payload_len"], 0);

    // An independent reader: tcpdump.
    if let Some(text) = tcpdump_read(&pcap) {
        assert_eq!(text.lines().count(), 8, "tcpdump -r:\n{text}");
        for want in [
            format!("{CLIENT_MAC} > {BROADCAST}, ethertype ARP (0x0806)"),
            format!("Request who-has {SERVER_IP} tell {CLIENT_IP}"),
            format!("{SERVER_MAC} > {CLIENT_MAC}, ethertype ARP (0x0806)"),
            format!("Reply {SERVER_IP} is-at {SERVER_MAC}"),
            format!("{CLIENT_IP} > {SERVER_IP}: ICMP echo request"),
            format!("{SERVER_IP} > {CLIENT_IP}: ICMP echo reply"),
            format!("> {SERVER_IP}.9: Flags [S]"),
            format!("{SERVER_IP}.9 > {CLIENT_IP}."),
            "Flags [R.]".to_string(),
        ] {
            assert!(text.contains(&want), "tcpdump -r lacks {want:?}:\n{text}");
        }
    }

    // lbctl reads it back: the same packets, except that a pcap keeps no interface or direction.
    let plain = Lbctl::plain();
    let back = plain.ok(&["--json", "capture", "-r", &pcap_s]);
    let back_pkts = ndjson(&back);
    assert_eq!(back_pkts.len(), 8, "{back}");
    assert!(
        back.stderr
            .contains(&format!("8 packets read from {pcap_s}")),
        "{back}"
    );
    for (live, read) in pkts.iter().zip(&back_pkts) {
        assert_eq!(read["iface"], "pcap");
        // A plain Ethernet pcap records no direction: none is invented.
        assert_eq!(read["dir"], Value::Null);
        let strip = |v: &Value| {
            let mut v = v.clone();
            let o = v.as_object_mut().unwrap();
            o.remove("iface");
            o.remove("dir");
            v
        };
        assert_eq!(strip(live), strip(read), "live vs -r");
    }
    // The text is tcpdump's, line for line (same file, same time zone).
    let text = plain.ok(&["capture", "-r", &pcap_s]);
    if let Some(want) = tcpdump_read(&pcap) {
        assert_eq!(
            text.stdout.trim_end(),
            want.trim_end(),
            "lbctl capture -r vs tcpdump -e -n -r"
        );
    }
    assert!(
        text.stdout.contains(&format!(
            "{CLIENT_MAC} > {BROADCAST}, ethertype ARP (0x0806), length 42: Request who-has \
             {SERVER_IP} tell {CLIENT_IP}, length 28"
        )),
        "{text}"
    );
    // Filters and counts apply to -r as well.
    let two = plain.ok(&["--json", "capture", "-r", &pcap_s, "-c", "2"]);
    assert_eq!(ndjson(&two).len(), 2, "{two}");
    let none = plain.ok(&["--json", "capture", "-r", &pcap_s, "--host", "192.0.2.1"]);
    assert_eq!(ndjson(&none).len(), 0, "{none}");
    assert!(none.stderr.contains("0 packets read"), "{none}");
    let quiet = plain.ok(&["-q", "capture", "-r", &pcap_s]);
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{quiet}"
    );
}

/// No -c, no --seconds: runs until Ctrl-C (SIGINT), then exits 0 with the summary and a complete
/// pcap. Also the default interface (`any`), which must still name the interface per packet.
#[test]
fn runs_until_sigint_on_any_interface() {
    require_root!();
    let lab = lab("int");
    let tmp = TempDir::new("int");
    let pcap = tmp.path().join("any.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let lb = Lbctl::new(&lab.server);
    let mut bg = Bg::spawn(&lb, &["capture", "--host", CLIENT_IP, "-w", &pcap_s]);
    bg.wait_listening();
    assert!(
        bg.stderr
            .iter()
            .any(|l| l.contains("listening on any") && l.contains("Ctrl-C")),
        "{}",
        bg.report()
    );
    lab.client
        .exec_ok(&["ping", "-c", "1", "-W", "2", SERVER_IP]);
    // ARP request + reply, echo request + reply.
    bg.wait_lines(4);
    bg.interrupt();
    let out = bg.finish(Duration::from_secs(10));
    out.expect_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    // `-i any`: Linux cooked v2, as tcpdump shows it: interface, direction, source MAC.
    let expect = [
        format!("eth0  B   ifindex 2 {CLIENT_MAC} ethertype ARP (0x0806), length 48: Request who-has {SERVER_IP} tell {CLIENT_IP}, length 28"),
        format!("eth0  Out ifindex 2 {SERVER_MAC} ethertype ARP (0x0806), length 48: Reply {SERVER_IP} is-at {SERVER_MAC}, length 28"),
        format!("eth0  In  ifindex 2 {CLIENT_MAC} ethertype IPv4 (0x0800), length 104: {CLIENT_IP} > {SERVER_IP}: ICMP echo request"),
        format!("eth0  Out ifindex 2 {SERVER_MAC} ethertype IPv4 (0x0800), length 104: {SERVER_IP} > {CLIENT_IP}: ICMP echo reply"),
    ];
    for (line, want) in lines.iter().zip(&expect) {
        // "HH:MM:SS.uuuuuu " then the rest.
        let (ts, rest) = line.split_once(' ').unwrap();
        assert!(
            ts.len() == 15 && ts.as_bytes()[2] == b':' && ts.as_bytes()[8] == b'.',
            "timestamp {ts:?}\n{out}"
        );
        assert!(
            rest.starts_with(want.as_str()),
            "{rest}\nwanted {want}\n{out}"
        );
    }
    assert!(out.stderr.contains("4 packets captured"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("4 packets written to {pcap_s}")),
        "{out}"
    );
    // The pcap holds SLL2 records (as `tcpdump -i any -w`): tcpdump, in the namespace (it names
    // interfaces by index there), prints exactly what the capture printed.
    let text = tcpdump_read_in(&lab.server, &pcap);
    assert_eq!(text.trim_end(), out.stdout, "tcpdump -r of our -i any pcap");
}

/// --seconds is honoured when nothing matches (poll with the remaining time).
#[test]
fn seconds_ends_an_idle_capture() {
    require_root!();
    let lab = lab("idle");
    let lb = Lbctl::new(&lab.server);
    let start = Instant::now();
    let out = lb.run(&[
        "capture",
        "-i",
        "eth0",
        "--host",
        "192.0.2.1",
        "--seconds",
        "1",
    ]);
    let took = start.elapsed();
    out.expect_ok();
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.contains("0 packets captured"), "{out}");
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
        "took {took:?}\n{out}"
    );
    // -q: nothing at all on either stream.
    let out = lb.run(&[
        "-q",
        "capture",
        "-i",
        "lo",
        "--host",
        "192.0.2.1",
        "--seconds",
        "0.3",
    ]);
    out.expect_ok();
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out}");
}

/// veth strips 802.1Q tags into metadata before the taps run: the capture must get them back
/// from PACKET_AUXDATA, show the VLAN and write the tag into the pcap.
#[test]
fn vlan_tag_recovered_from_auxdata() {
    require_root!();
    let lab = lab("vlan");
    let tmp = TempDir::new("vlan");
    let pcap = tmp.path().join("vlan.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let lb = Lbctl::new(&lab.server);
    let mut bg = Bg::spawn(
        &lb,
        &[
            "--json",
            "capture",
            "-i",
            "eth0",
            "--host",
            "192.0.2.10",
            "-c",
            "2",
            "--seconds",
            "15",
            "-w",
            &pcap_s,
        ],
    );
    bg.wait_listening();
    let (sender, target) = ([192, 0, 2, 10], [192, 0, 2, 11]);
    send_frames(
        &lab.client,
        "eth0",
        vec![
            arp_request(SERVER_MAC, Some(100), sender, target),
            arp_request(BROADCAST, None, sender, target),
        ],
    );
    let out = bg.finish(Duration::from_secs(20));
    out.expect_ok();
    let pkts = ndjson(&out);
    assert_eq!(pkts.len(), 2, "{out}");
    assert_eq!(pkts[0]["vlan"], 100, "{out}");
    assert_eq!(pkts[0]["dir"], "in", "{out}");
    assert_eq!(pkts[0]["dst_mac"], SERVER_MAC, "{out}");
    assert_eq!(pkts[0]["op"], "request", "{out}");
    assert_eq!(pkts[0]["target_ip"], "192.0.2.11", "{out}");
    assert_eq!(pkts[0]["len"], 42 + 4, "{out}");
    assert_eq!(pkts[1]["vlan"], Value::Null, "{out}");
    assert_eq!(pkts[1]["dir"], "broadcast", "{out}");
    if let Some(text) = tcpdump_read(&pcap) {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("ethertype 802.1Q (0x8100)") && lines[0].contains("vlan 100"),
            "tag not in the pcap:\n{text}"
        );
        assert!(
            lines[0].contains("Request who-has 192.0.2.11 tell 192.0.2.10"),
            "{text}"
        );
        assert!(!lines[1].contains("802.1Q"), "{text}");
    }
    let back = Lbctl::plain().ok(&["capture", "-r", &pcap_s]);
    assert!(
        back.stdout
            .lines()
            .next()
            .is_some_and(|l| l.contains(&format!(
                "{SERVER_MAC}, ethertype 802.1Q (0x8100), length 46: vlan 100, p 0, ethertype \
                 ARP (0x0806), Request who-has 192.0.2.11"
            ))),
        "{back}"
    );
}

/// The library API `doctor` uses, called directly on a thread inside the server namespace:
/// typed packets, the host filter, `max_packets`, and `duration` with no traffic.
#[test]
fn library_api_in_namespace_thread() {
    use std::net::{IpAddr, Ipv4Addr};

    use lbctl::sys::capture::{self, Capture, CaptureOpts, Direction, Filter, Packet, L3, L4};

    require_root!();
    let lab = lab("lib");
    let path = format!("/run/netns/{}", lab.server.name());
    let client: Ipv4Addr = CLIENT_IP.parse().unwrap();
    let server: Ipv4Addr = SERVER_IP.parse().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let nsfile = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on this thread only, with a valid namespace descriptor.
        assert_eq!(
            unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let opts = CaptureOpts {
            iface: Some("eth0".into()),
            filter: Filter {
                hosts: vec![IpAddr::V4(client)],
            },
            max_packets: Some(4),
            duration: Some(Duration::from_secs(15)),
        };
        let mut cap = Capture::open(opts.iface.as_deref()).expect("open");
        ready_tx.send(()).unwrap();
        let mut got: Vec<Packet> = Vec::new();
        let n = cap
            .run(&opts, &|| false, &mut |p| {
                got.push(p.clone());
                true
            })
            .expect("capture");
        assert_eq!(n, 4);
        // Nothing matches 192.0.2.1: `duration` ends it.
        let idle = CaptureOpts {
            iface: Some("eth0".into()),
            filter: Filter {
                hosts: vec!["192.0.2.1".parse().unwrap()],
            },
            max_packets: None,
            duration: Some(Duration::from_millis(300)),
        };
        let start = Instant::now();
        capture::capture(&idle, &mut |_| panic!("nothing should match")).expect("idle");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        got
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("capture opened");
    lab.client
        .exec_ok(&["ping", "-c", "1", "-W", "2", SERVER_IP]);
    let got = worker.join().expect("capture thread");
    let shown: Vec<String> = got.iter().map(|p| p.to_string()).collect();
    let shown = shown.join("\n");
    assert_eq!(got.len(), 4, "{shown}");
    let client_mac = [2, 0, 0, 0, 0, 0x10];
    let server_mac = [2, 0, 0, 0, 0, 0x11];
    assert_eq!(got[0].dir, Some(Direction::Broadcast), "{shown}");
    assert_eq!(
        got[0].l3,
        L3::Arp {
            op: 1,
            sender_mac: client_mac,
            sender_ip: client,
            target_mac: [0; 6],
            target_ip: server
        },
        "{shown}"
    );
    assert_eq!(
        (got[1].dir, got[1].src_mac),
        (Some(Direction::Out), server_mac),
        "{shown}"
    );
    assert!(matches!(got[1].l3, L3::Arp { op: 2, .. }), "{shown}");
    assert_eq!(
        (got[2].dir, got[2].dst_mac),
        (Some(Direction::In), server_mac),
        "{shown}"
    );
    assert!(
        matches!(
            got[2].l3,
            L3::Ip {
                l4: L4::Icmp { typ: 8, code: 0 },
                ttl: 64,
                ..
            }
        ),
        "{shown}"
    );
    assert_eq!(got[3].dir, Some(Direction::Out), "{shown}");
    assert!(
        matches!(
            got[3].l3,
            L3::Ip {
                l4: L4::Icmp { typ: 0, .. },
                ..
            }
        ),
        "{shown}"
    );
    for p in &got {
        assert_eq!(p.iface, "eth0");
        assert!(p.ifindex > 0);
        assert_eq!(&p.frame[..6], &p.dst_mac);
        // Kernel timestamps, not the epoch.
        assert!(p.ts > std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    }
}

/// Bad input is refused with exit 2 and one error line, before any socket or file is opened.
#[test]
fn usage_errors() {
    let tmp = TempDir::new("usage");
    let not_pcap = tmp.path().join("not.pcap");
    std::fs::write(&not_pcap, "this is not a capture file\n").unwrap();
    let not_pcap = not_pcap.to_string_lossy().into_owned();
    let missing_dir = tmp.path().join("no/such/dir/x.pcap");
    let missing_dir = missing_dir.to_string_lossy().into_owned();
    let tmp_s = tmp.path().to_string_lossy().into_owned();
    let lb = Lbctl::plain();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["capture", "-c", "0"], "count"),
        (vec!["capture", "--seconds", "0"], "--seconds"),
        (vec!["capture", "--seconds=-1"], "--seconds"),
        (vec!["capture", "--seconds", "nan"], "--seconds"),
        (vec!["capture", "--host", "nope"], "nope"),
        (
            vec!["capture", "--vip", "198.18.0.100/24"],
            "198.18.0.100/24",
        ),
        (
            vec!["capture", "-c", "1", "-w", &missing_dir],
            "does not exist",
        ),
        (vec!["capture", "-c", "1", "-w", &tmp_s], "is a directory"),
        (
            vec!["capture", "-r", "/nonexistent/lbctl.pcap"],
            "no such file",
        ),
        (
            vec!["capture", "-r", &not_pcap],
            "not a pcap or pcapng file",
        ),
        (vec!["capture", "-r", &not_pcap, "--seconds", "1"], "-r"),
    ];
    for (args, needle) in cases {
        let out = lb.run(&args);
        out.expect_code(2).expect_one_line_error();
        assert!(
            out.stderr.contains(needle),
            "stderr lacks {needle:?}\n{out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
    }
    assert!(!Path::new(&missing_dir).exists());
}

/// An interface that does not exist in the namespace is a usage error.
#[test]
fn unknown_interface() {
    require_root!();
    let ns = Netns::new("ifx");
    let out = Lbctl::new(&ns).run(&["capture", "-i", "eth9", "-c", "1"]);
    out.expect_code(2).expect_one_line_error();
    assert!(out.stderr.contains("eth9"), "{out}");
}

/// Without CAP_NET_RAW: exit 77 and no pcap file left behind. Reading a pcap needs nothing.
#[test]
fn privilege_error_without_cap_net_raw() {
    require_root!();
    require_tool!("setpriv");
    let lab = lab("priv");
    let tmp = TempDir::new("priv");
    let pcap = tmp.path().join("never.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let lb = Lbctl::new(&lab.server);
    let drop_raw = [
        "setpriv",
        "--inh-caps=-net_raw",
        "--bounding-set=-net_raw",
        "--",
    ];
    let mut argv: Vec<&str> = drop_raw.to_vec();
    argv.extend(lb.argv(&["capture", "-i", "eth0", "-c", "1", "-w", &pcap_s]));
    let run_dir = lb.run_dir().to_string_lossy().into_owned();
    let out = run_cmd(&argv, &[("LBCTL_RUN_DIR", &run_dir)], None);
    out.expect_code(77).expect_one_line_error();
    assert!(out.stderr.contains("CAP_NET_RAW"), "{out}");
    assert!(!pcap.exists(), "a refused capture must not create {pcap_s}");

    // -r with no capabilities at all.
    let sample = tmp.path().join("sample.pcap");
    let sample_s = sample.to_string_lossy().into_owned();
    let mut bg = Bg::spawn(
        &lb,
        &[
            "capture",
            "-i",
            "eth0",
            "--host",
            CLIENT_IP,
            "-c",
            "2",
            "--seconds",
            "10",
            "-w",
            &sample_s,
        ],
    );
    bg.wait_listening();
    lab.client
        .exec_ok(&["ping", "-c", "1", "-W", "2", SERVER_IP]);
    bg.finish(Duration::from_secs(15)).expect_ok();
    let mut argv = vec!["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"];
    let plain = Lbctl::plain();
    argv.extend(plain.argv(&["capture", "-r", &sample_s]));
    let out = run_cmd(&argv, &[], None);
    out.expect_ok();
    assert_eq!(out.stdout.lines().count(), 2, "{out}");
}

// ---------------------------------------------------------------------------------------------
// Line by line against tcpdump
// ---------------------------------------------------------------------------------------------

/// Run `f` on a thread that has entered `ns` (sockets it opens live there).
fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/run/netns/{}", ns.name());
    thread::spawn(move || {
        let nsfile = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on this thread only, with a valid namespace descriptor.
        assert_eq!(
            unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns {path}"
        );
        f()
    })
}

/// A TUN device `name` in `ns`, up; it lives (and has carrier) while the returned file is open.
fn tun(ns: &Netns, name: &str) -> std::fs::File {
    let owned = name.to_string();
    let f = in_ns(ns, move || {
        let name = owned;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("/dev/net/tun");
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(name.as_bytes());
        // IFF_TUN | IFF_NO_PI
        ifr[16..18].copy_from_slice(&0x1001u16.to_ne_bytes());
        // SAFETY: TUNSETIFF reads an ifreq (40 bytes) we own.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), 0x4004_54ca, ifr.as_mut_ptr()) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        f
    })
    .join()
    .expect("tun thread");
    ns.ip(&["link", "set", name, "up"]);
    f
}

impl Bg {
    /// Any command (tcpdump), with the same line capture.
    fn spawn_argv(argv: &[&str]) -> Bg {
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let (out_rx, h1) = line_reader(child.stdout.take().expect("piped"));
        let (err_rx, h2) = line_reader(child.stderr.take().expect("piped"));
        Bg {
            cmd: argv.join(" "),
            child: Some(child),
            out_rx,
            err_rx,
            stdout: Vec::new(),
            stderr: Vec::new(),
            readers: vec![h1, h2],
        }
    }
}

/// Lines without their timestamps (two captures stamp the same packet a few µs apart).
fn untimed(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| match l.split_once(' ') {
            Some((ts, rest)) if ts.len() == 15 && ts.as_bytes()[2] == b':' => rest.to_string(),
            _ => l.to_string(),
        })
        .collect()
}

#[track_caller]
fn same_lines(what: &str, ours: &Out, theirs: &Out) {
    let (a, b) = (untimed(&ours.stdout), untimed(&theirs.stdout));
    if a != b {
        let mut diff = String::new();
        for i in 0..a.len().max(b.len()) {
            let (x, y) = (a.get(i), b.get(i));
            if x != y {
                diff.push_str(&format!(
                    "line {}:\n  lbctl:   {}\n  tcpdump: {}\n",
                    i + 1,
                    x.map_or("<none>", |s| s.as_str()),
                    y.map_or("<none>", |s| s.as_str())
                ));
            }
        }
        panic!("{what}: lbctl and tcpdump differ\n{diff}\n{ours}\n{theirs}");
    }
    assert!(!a.is_empty(), "{what}: nothing captured\n{ours}\n{theirs}");
}

/// `lbctl capture` and `tcpdump -e -n` run side by side in the server namespace, with the same
/// filter expression, on a named Ethernet interface, on `any` (Linux cooked v2), on `lo` and on a
/// TUN device (raw IP); their outputs must be the same line by line, timestamps aside. The traffic:
/// ARP, ICMP echo, IPv6 neighbour discovery and ICMPv6 echo, a TCP connection with data (relative
/// sequence numbers, options), a refused one (RST), UDP with a reply and to a closed port (ICMP
/// port unreachable), an 802.1Q-tagged frame, loopback (seen once) and a TUN device. Then the
/// pcapng lbctl wrote is read back by both, again line by line.
#[test]
fn live_output_matches_tcpdump_line_by_line() {
    require_root!();
    if !have_tool_or_skip("live_output_matches_tcpdump_line_by_line", "tcpdump") {
        return;
    }
    let lab = lab("tcpd");
    lab.client
        .ip(&["addr", "add", "2001:db8::10/64", "dev", "eth0", "nodad"]);
    lab.server
        .ip(&["addr", "add", "2001:db8::11/64", "dev", "eth0", "nodad"]);
    let _tun = tun(&lab.server, "tun0");
    lab.server
        .ip(&["addr", "add", "198.18.9.1/24", "dev", "tun0"]);
    let tmp = TempDir::new("tcpd");
    let pcapng = tmp.path().join("any.pcapng");
    let pcapng_s = pcapng.to_string_lossy().into_owned();
    // tcpdump has "no VLAN support for Linux cooked v2": `vlan` only on the Ethernet interface.
    let filter = |iface: &str| {
        let mut f = "host 198.18.0.10 or host 2001:db8::10 or host 127.0.0.1 or net 198.18.9.0/24"
            .to_string();
        if iface == "eth0" {
            f.push_str(" or vlan");
        }
        f
    };
    let lb = Lbctl::new(&lab.server);
    let ns = lab.server.name().to_string();
    let tcpdump = |iface: &str| {
        let f = filter(iface);
        let mut argv = vec![
            "ip", "netns", "exec", &ns, "tcpdump", "-e", "-n", "-l", "-i", iface,
        ];
        argv.extend(f.split(' '));
        Bg::spawn_argv(&argv)
    };
    let ours = |iface: &str, extra: &[&str]| {
        let f = filter(iface);
        let mut argv = vec!["capture", "-i", iface];
        argv.extend_from_slice(extra);
        argv.extend(f.split(' '));
        Bg::spawn(&lb, &argv)
    };
    let mut caps = vec![
        ("eth0", ours("eth0", &[]), tcpdump("eth0")),
        ("any", ours("any", &["-w", &pcapng_s]), tcpdump("any")),
        ("tun0", ours("tun0", &[]), tcpdump("tun0")),
        ("lo", ours("lo", &[]), tcpdump("lo")),
    ];
    for (_, a, b) in &mut caps {
        a.wait_listening();
        b.wait_listening();
    }

    // Servers: TCP echo on 5001, UDP echo on 5002 (one each).
    let servers = in_ns(&lab.server, || {
        let l = std::net::TcpListener::bind("198.18.0.11:5001").unwrap();
        let u = std::net::UdpSocket::bind("198.18.0.11:5002").unwrap();
        (l, u)
    })
    .join()
    .unwrap();
    let echo = thread::spawn(move || {
        use std::io::{Read, Write};
        let (l, u) = servers;
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap();
        c.write_all(&buf[..n]).unwrap();
        drop(c);
        let (n, from) = u.recv_from(&mut buf).unwrap();
        u.send_to(&buf[..n], from).unwrap();
    });
    let c = &lab.client;
    c.exec_ok(&["ping", "-c", "1", "-W", "2", SERVER_IP]);
    c.exec_ok(&["ping", "-c", "1", "-W", "2", "2001:db8::11"]);
    c.exec_ok(&[
        "bash",
        "-c",
        &format!("exec 3<>/dev/tcp/{SERVER_IP}/5001; echo hello >&3; read -t 2 x <&3; exec 3>&-; sleep 0.3"),
    ]);
    let refused = c.exec(&["bash", "-c", &format!("exec 3<>/dev/tcp/{SERVER_IP}/5010")]);
    assert!(!refused.success(), "{refused}");
    c.exec_ok(&[
        "bash",
        "-c",
        &format!("exec 3<>/dev/udp/{SERVER_IP}/5002; echo hi >&3; read -t 1 x <&3; exec 3>&-"),
    ]);
    c.exec_ok(&[
        "bash",
        "-c",
        &format!("exec 3<>/dev/udp/{SERVER_IP}/5009; echo x >&3; sleep 0.2"),
    ]);
    echo.join().expect("echo server");
    send_frames(
        c,
        "eth0",
        vec![arp_request(
            SERVER_MAC,
            Some(100),
            [192, 0, 2, 10],
            [192, 0, 2, 11],
        )],
    );
    lab.server
        .exec_ok(&["ping", "-c", "1", "-W", "2", "127.0.0.1"]);
    let tun_ping = lab
        .server
        .exec(&["ping", "-c", "1", "-W", "1", "198.18.9.2"]);
    assert!(
        !tun_ping.success(),
        "nothing answers on the TUN device\n{tun_ping}"
    );
    thread::sleep(Duration::from_millis(500));

    for (iface, a, b) in caps {
        a.interrupt();
        b.interrupt();
        let ours = a.finish(Duration::from_secs(10));
        let theirs = b.finish(Duration::from_secs(10));
        ours.expect_ok();
        same_lines(&format!("-i {iface}"), &ours, &theirs);
        let text = &ours.stdout;
        match iface {
            "eth0" => {
                for want in [
                    "Request who-has 198.18.0.11 tell 198.18.0.10",
                    "ICMP6, neighbor solicitation, who has 2001:db8::11",
                    "Flags [P.], seq 1:7, ack 1",
                    "UDP, length 3",
                    "udp port 5009 unreachable",
                    "vlan 100, p 0, ethertype ARP",
                    "Flags [R.], seq 0, ack ",
                ] {
                    assert!(text.contains(want), "-i eth0 lacks {want:?}\n{text}");
                }
            }
            "any" => {
                assert_eq!(
                    text.matches("127.0.0.1 > 127.0.0.1: ICMP echo request")
                        .count(),
                    1,
                    "loopback shown once\n{text}"
                );
                assert!(text.contains("eth0  In  ifindex"), "{text}");
                assert!(text.contains("tun0  Out ifindex"), "{text}");
            }
            "lo" => assert_eq!(
                text.matches("127.0.0.1 > 127.0.0.1: ICMP echo request")
                    .count(),
                1,
                "loopback shown once\n{text}"
            ),
            _ => assert!(
                text.contains("ip: 198.18.9.1 > 198.18.9.2: ICMP echo request"),
                "{text}"
            ),
        }
    }

    // The -i any pcapng holds SLL2 records; tcpdump and lbctl read it the same way.
    let ours = lb.run(&["capture", "-r", &pcapng_s]);
    ours.expect_ok();
    let theirs = lab.server.exec(&["tcpdump", "-e", "-n", "-r", &pcapng_s]);
    assert!(theirs.success(), "{theirs}");
    assert_eq!(ours.stdout.trim_end(), theirs.stdout.trim_end());
}

/// A filter expression that does not parse is a usage error naming the position, before
/// anything is opened.
#[test]
fn bad_filter_expression_is_a_usage_error() {
    let out = Lbctl::plain().run(&["capture", "-r", "/nonexistent.pcap", "tcp", "port", "x"]);
    out.expect_code(2).expect_one_line_error();
    assert!(
        out.stderr
            .contains("'x' is not a port number at character 10 of 'tcp port x'"),
        "{out}"
    );
}
