//! `lbctl capture`: `tcpdump -e -n` for DSR problems, with the direction of every frame.
//!
//! Why a built-in capture when tcpdump exists: backends often have no tcpdump, DSR bugs are
//! about MACs and directions (who answers ARP for the VIP; does the reply leave with the
//! backend's MAC) more than payloads, and `doctor` needs the same capture as a library
//! (`sys::capture`). Output is one tcpdump-like line per packet, or one JSON object per line
//! (ndjson) with `--json`, as packets arrive. The text is exactly `tcpdump -e -n`'s for the
//! same packets (Ethernet on a named interface, Linux cooked v2 with `-i any`), so the two can be
//! compared line by line. `-w` also writes a pcap (pcapng for `*.pcapng`) that tcpdump and
//! Wireshark read, and `-r` reads either back (no privilege or namespace needed). `--vip` and
//! `--host` each keep packets (and ARP) involving that address; given together, only traffic
//! between the two. A tcpdump-style filter expression (`tcp port 80 and not host 198.18.0.2`)
//! narrows further; it is parsed before anything is opened.
//!
//! Everything is validated before the socket is opened, and the socket is opened (privilege
//! check) before the `-w` file is created, so a refused capture leaves no empty file behind.
//! Without `-c`/`--seconds` it runs until Ctrl-C; SIGINT and SIGTERM end it cleanly, so the
//! pcap and the summary are complete.

use std::fs::File;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::Env;
use crate::cli::CaptureArgs;
use crate::error::{Error, Result};
use crate::model::{parse_ip, parse_vip};
use crate::sys::capture::filter::View;
use crate::sys::capture::tcpdump::{Printer, Record};
use crate::sys::capture::{
    self, Capture, CaptureOpts, Expr, FileFormat, Filter, Packet, PcapWriter, L3,
};
use crate::sys::signals::{self, Restart, Signal};
use crate::{usage, Ctx, Outcome};

/// SIGINT and SIGTERM end the capture; the loop polls for them at least every 200 ms.
const STOP: [Signal; 2] = [Signal::Int, Signal::Term];

/// Catches SIGINT/SIGTERM for the lifetime of the guard; restores the default on drop.
struct SignalGuard;

impl SignalGuard {
    fn install() -> SignalGuard {
        signals::clear(&STOP);
        signals::catch(&STOP, Restart::Yes);
        SignalGuard
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        signals::restore_default(&STOP);
    }
}

/// Which packets to show: `--vip` and `--host` each name one address; with both, a packet must
/// involve both (traffic between that client and that VIP). Then the filter expression.
struct Select {
    required: Vec<IpAddr>,
    expr: Option<Expr>,
}

impl Select {
    fn wants(&self, p: &Packet) -> bool {
        self.required.iter().all(|ip| p.l3.involves(*ip))
            && self.expr.as_ref().is_none_or(|e| e.matches_packet(p))
    }

    fn is_empty(&self) -> bool {
        self.required.is_empty() && self.expr.is_none()
    }

    fn wants_view(&self, v: &View<'_>) -> bool {
        self.required.iter().all(|ip| v.l3.involves(*ip))
            && self.expr.as_ref().is_none_or(|e| e.matches(v))
    }
}

/// Where packets go: stdout (text or ndjson) and optionally a pcap file.
struct Sink<'a> {
    ctx: &'a Ctx,
    printer: Printer,
    line: Vec<u8>,
    pcap: Option<(PcapWriter, &'a Path)>,
    count: u64,
    limit: Option<u64>,
    /// stdout was closed (`| head`): stop quietly.
    closed: bool,
    error: Option<Error>,
}

impl Sink<'_> {
    /// Take one packet; false when the capture should stop.
    fn take(&mut self, p: &Packet) -> bool {
        self.count += 1;
        if let Some((w, path)) = &mut self.pcap {
            if let Err(e) = w.write(p) {
                self.error = Some(Error::Runtime(
                    anyhow::Error::new(e).context(format!("writing {}", path.display())),
                ));
                return false;
            }
        }
        self.line.clear();
        if self.ctx.global.json {
            let _ = serde_json::to_writer(&mut self.line, &p.to_json());
        } else if !self.ctx.global.quiet {
            let d = p.ts.duration_since(UNIX_EPOCH).unwrap_or_default();
            let r = Record {
                secs: d.as_secs() as i64,
                micros: d.subsec_micros(),
                linktype: p.linktype,
                data: &p.frame,
                orig_len: p.frame.len() as u32,
            };
            self.printer.line(&mut self.line, &r, Some(&p.iface));
        }
        if !self.line.is_empty() {
            self.line.push(b'\n');
            let mut out = io::stdout().lock();
            if let Err(e) = out.write_all(&self.line).and_then(|_| out.flush()) {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    self.closed = true;
                } else {
                    self.error = Some(Error::Runtime(
                        anyhow::Error::new(e).context("writing to stdout"),
                    ));
                }
                return false;
            }
        }
        self.limit.is_none_or(|l| self.count < l)
    }

    fn finish(self, what: &str) -> Result<Outcome> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let n = self.count;
        let plural = if n == 1 { "" } else { "s" };
        if !self.ctx.global.quiet && !self.closed {
            eprintln!("{n} packet{plural} {what}");
            if let Some((_, path)) = &self.pcap {
                eprintln!("{n} packet{plural} written to {}", path.display());
            }
        }
        Ok(Outcome::Clean)
    }
}

pub fn run(ctx: &Ctx, env: &Env, a: CaptureArgs) -> Result<Outcome> {
    // 1. Validate everything (usage errors, exit 2) before any socket or file is opened.
    let mut required = Vec::new();
    if let Some(v) = &a.vip {
        required.push(parse_vip(v)?);
    }
    if let Some(h) = &a.host {
        let h = parse_ip(h, "host")?;
        if !required.contains(&h) {
            required.push(h);
        }
    }
    if a.count == Some(0) {
        return Err(usage!("-c/--count must be at least 1"));
    }
    let duration = match a.seconds {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(
            Duration::try_from_secs_f64(s).map_err(|_| usage!("--seconds {s}: out of range"))?,
        ),
        Some(s) => return Err(usage!("--seconds must be a positive number, not {s}")),
    };
    let expr = if a.expr.is_empty() {
        None
    } else {
        Some(Expr::parse(&a.expr)?)
    };
    let select = Select { required, expr };
    if let Some(path) = &a.read {
        if duration.is_some() {
            return Err(usage!("--seconds applies to live captures, not to -r"));
        }
        return read(ctx, path, &select, a.count);
    }
    if let Some(path) = &a.write {
        check_output(path)?;
    }
    let iface = if a.iface == "any" {
        None
    } else {
        env.require_link(&a.iface)?;
        Some(a.iface.clone())
    };

    // 2. Open the socket (privilege errors here, before the pcap file exists).
    let opts = CaptureOpts {
        iface,
        // The capture keeps anything that involves one of the addresses; `Select` then
        // requires all of them.
        filter: Filter {
            hosts: select.required.clone(),
        },
        max_packets: None,
        duration,
    };
    let mut cap = Capture::open(opts.iface.as_deref())?;
    let pcap = match &a.write {
        Some(path) => {
            let file = File::create(path).map_err(|e| {
                Error::Runtime(
                    anyhow::Error::new(e).context(format!("creating {}", path.display())),
                )
            })?;
            let w = PcapWriter::with_format(file, FileFormat::for_path(path), cap.linktype())
                .map_err(|e| {
                    Error::Runtime(
                        anyhow::Error::new(e).context(format!("writing {}", path.display())),
                    )
                })?;
            Some((w, path.as_path()))
        }
        None => None,
    };
    let mut sink = Sink {
        ctx,
        printer: Printer::new(),
        line: Vec::with_capacity(512),
        pcap,
        count: 0,
        limit: a.count,
        closed: false,
        error: None,
    };

    // 3. Capture until the count, the duration, or Ctrl-C.
    let _signals = SignalGuard::install();
    if !ctx.global.quiet {
        let until = match (a.count, duration) {
            (None, None) => " (Ctrl-C to stop)".to_string(),
            (Some(c), None) => format!(" for {c} packet{}", if c == 1 { "" } else { "s" }),
            (None, Some(_)) => format!(" for {} s", a.seconds.unwrap_or_default()),
            (Some(c), Some(_)) => format!(
                " for {c} packet{} or {} s",
                if c == 1 { "" } else { "s" },
                a.seconds.unwrap_or_default()
            ),
        };
        eprintln!("listening on {}{until}", cap.describe());
    }
    cap.run(&opts, &|| signals::received(&STOP), &mut |p| {
        !select.wants(p) || sink.take(p)
    })?;
    sink.finish("captured")
}

/// `-w FILE`: its directory must exist and it must not be a directory itself.
fn check_output(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(usage!("-w {}: is a directory", path.display()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(usage!(
            "-w {}: directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    Ok(())
}

/// `-r FILE`: print a pcap or pcapng the same way as a live capture. Text output is streamed
/// from the borrowed records into one buffer (no per-packet allocation); JSON builds packets.
fn read(ctx: &Ctx, path: &Path, select: &Select, count: Option<u64>) -> Result<Outcome> {
    let mut reader = capture::pcap_reader(path)?;
    let ctx_err = |e: Error| match e {
        Error::Runtime(e) => Error::Runtime(e.context(format!("reading {}", path.display()))),
        other => other,
    };
    if ctx.global.json {
        let mut sink = Sink {
            ctx,
            printer: Printer::new(),
            line: Vec::with_capacity(512),
            pcap: None,
            count: 0,
            limit: count,
            closed: false,
            error: None,
        };
        while let Some(p) = reader.next_packet().map_err(ctx_err)? {
            if select.wants(&p) && !sink.take(&p) {
                break;
            }
        }
        return sink.finish(&format!("read from {}", path.display()));
    }
    let mut printer = Printer::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    let mut out = io::stdout().lock();
    let mut n = 0u64;
    let mut closed = false;
    let unknown = L3::Other { ethertype: 0 };
    let flush = |out: &mut io::StdoutLock<'_>, buf: &mut Vec<u8>| -> Result<bool> {
        match out.write_all(buf) {
            Ok(()) => {
                buf.clear();
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(Error::Runtime(
                anyhow::Error::new(e).context("writing to stdout"),
            )),
        }
    };
    while let Some(r) = reader.next_record().map_err(ctx_err)? {
        if count.is_some_and(|c| n >= c) {
            break;
        }
        // Decoding is only needed to filter.
        let meta = if select.is_empty() {
            None
        } else {
            capture::decode_record(r.linktype, r.data)
        };
        let view = match &meta {
            Some(m) => View {
                ethertype: m.ethertype,
                vlan: m.vlan,
                l3: &m.l3,
            },
            None => View {
                ethertype: 0,
                vlan: None,
                l3: &unknown,
            },
        };
        if !select.is_empty() && !select.wants_view(&view) {
            continue;
        }
        n += 1;
        if ctx.global.quiet {
            continue;
        }
        printer.line(
            &mut buf,
            &Record {
                secs: r.ts.as_secs() as i64,
                micros: r.ts.subsec_micros(),
                linktype: r.linktype,
                data: r.data,
                orig_len: r.orig_len,
            },
            None,
        );
        buf.push(b'\n');
        if buf.len() >= 1 << 16 && !flush(&mut out, &mut buf)? {
            closed = true;
            break;
        }
    }
    if !closed && !flush(&mut out, &mut buf)? {
        closed = true;
    }
    if !closed {
        let _ = out.flush();
    }
    if !ctx.global.quiet && !closed {
        let plural = if n == 1 { "" } else { "s" };
        eprintln!("{n} packet{plural} read from {}", path.display());
    }
    Ok(Outcome::Clean)
}
