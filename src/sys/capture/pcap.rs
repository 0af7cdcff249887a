//! pcap and pcapng files through the `pcap-file` crate: read either (any byte order, micro- or
//! nanosecond pcap, pcapng with several interfaces of different link types and timestamp
//! resolutions); write either, with the capture's link type.
//!
//! pcap-file 2.0 reads an Enhanced Packet Block's timestamp as nanoseconds whatever the
//! interface's `if_tsresol` says (the pcapng default is microseconds), so the raw units are
//! rescaled here from the interface description.

use std::cell::RefCell;
use std::io::BufRead;
use std::rc::Rc;

use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::*;

/// Which file format `-w` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Pcap,
    PcapNg,
}

impl FileFormat {
    /// pcapng for a `.pcapng` file name, classic pcap otherwise.
    pub fn for_path(path: &Path) -> FileFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("pcapng") => FileFormat::PcapNg,
            _ => FileFormat::Pcap,
        }
    }
}

/// Collects what a pcap-file writer writes, so each packet reaches the file in one `write`.
#[derive(Clone, Default)]
struct Staged(Rc<RefCell<Vec<u8>>>);

impl Write for Staged {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Pcap(pcap_file::pcap::PcapWriter<Staged>),
    Ng(PcapNgWriter<Staged>),
}

/// Writes pcap or pcapng (one interface of the given link type, microsecond pcap or
/// nanosecond pcapng timestamps), one `write` per packet so the file is complete up to the last
/// packet even if the process is killed.
pub struct PcapWriter<W: Write = File> {
    out: W,
    staged: Staged,
    inner: Inner,
}

fn io_err(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl<W: Write> PcapWriter<W> {
    /// Classic pcap of Ethernet frames.
    pub fn new(out: W) -> io::Result<Self> {
        PcapWriter::with_format(out, FileFormat::Pcap, LINKTYPE_ETHERNET)
    }

    /// Write the file header (pcap) or section and interface description (pcapng).
    pub fn with_format(out: W, format: FileFormat, linktype: u32) -> io::Result<Self> {
        let staged = Staged::default();
        let datalink = DataLink::from(linktype);
        let inner = match format {
            FileFormat::Pcap => Inner::Pcap(
                pcap_file::pcap::PcapWriter::with_header(
                    staged.clone(),
                    PcapHeader {
                        version_major: 2,
                        version_minor: 4,
                        ts_correction: 0,
                        ts_accuracy: 0,
                        snaplen: SNAPLEN as u32,
                        datalink,
                        ts_resolution: TsResolution::MicroSecond,
                        endianness: Endianness::native(),
                    },
                )
                .map_err(io_err)?,
            ),
            FileFormat::PcapNg => {
                let mut w = PcapNgWriter::new(staged.clone()).map_err(io_err)?;
                w.write_pcapng_block(InterfaceDescriptionBlock {
                    linktype: datalink,
                    snaplen: SNAPLEN as u32,
                    options: vec![InterfaceDescriptionOption::IfTsResol(9)],
                })
                .map_err(io_err)?;
                Inner::Ng(w)
            }
        };
        let mut w = PcapWriter { out, staged, inner };
        w.drain()?;
        Ok(w)
    }

    fn drain(&mut self) -> io::Result<()> {
        let mut buf = self.staged.0.borrow_mut();
        self.out.write_all(&buf)?;
        buf.clear();
        drop(buf);
        self.out.flush()
    }

    /// Write one packet (its `frame` must be of the writer's link type).
    pub fn write(&mut self, p: &Packet) -> io::Result<()> {
        let data = &p.frame[..p.frame.len().min(SNAPLEN)];
        let ts = p.ts.duration_since(UNIX_EPOCH).unwrap_or_default();
        match &mut self.inner {
            Inner::Pcap(w) => {
                // Microsecond resolution: whole microseconds.
                let ts = Duration::new(ts.as_secs(), ts.subsec_micros() * 1000);
                w.write_packet(&PcapPacket::new(ts, p.frame.len() as u32, data))
                    .map_err(io_err)?;
            }
            Inner::Ng(w) => {
                w.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: ts,
                    original_len: p.frame.len() as u32,
                    data: data.into(),
                    options: vec![],
                })
                .map_err(io_err)?;
            }
        }
        self.drain()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Write `packets` (all of the first one's link type; Ethernet when empty) to a new pcap file at
/// `path`, or pcapng when the name ends in `.pcapng`.
pub fn write_pcap(path: &Path, packets: &[Packet]) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let linktype = packets.first().map_or(LINKTYPE_ETHERNET, |p| p.linktype);
    let mut w = PcapWriter::with_format(
        File::create(path).with_context(ctx)?,
        FileFormat::for_path(path),
        linktype,
    )
    .with_context(ctx)?;
    for p in packets {
        w.write(p).with_context(ctx)?;
    }
    Ok(())
}

/// One record read from a file, borrowed from the reader.
pub struct RecordRef<'a> {
    pub ts: Duration,
    pub linktype: u32,
    pub data: &'a [u8],
    pub orig_len: u32,
    /// The pcapng interface name (`if_name`), if the file gives one.
    pub iface: Option<&'a str>,
}

struct NgIface {
    linktype: u32,
    /// Timestamp units per second.
    units: u64,
    name: Option<String>,
}

enum Source<R: Read> {
    /// The reader, its link type, nanosecond timestamps.
    Pcap(pcap_file::pcap::PcapReader<R>, u32, bool),
    Ng(pcap_file::pcapng::PcapNgReader<R>, Vec<NgIface>),
}

/// Reads pcap or pcapng: Ethernet, Linux cooked (SLL, SLL2) or raw-IP records.
pub struct PcapReader<R: Read = BufReader<File>> {
    src: Source<io::BufReader<R>>,
    /// Holds a record's bytes when the parser hands out an owned copy.
    scratch: Vec<u8>,
}

/// Borrow `data`, or park an owned copy in `scratch` and borrow that.
fn lend<'a>(data: std::borrow::Cow<'a, [u8]>, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    match data {
        std::borrow::Cow::Borrowed(b) => b,
        std::borrow::Cow::Owned(v) => {
            *scratch = v;
            scratch
        }
    }
}

fn supported(linktype: u32) -> bool {
    matches!(
        linktype,
        LINKTYPE_ETHERNET
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_LINUX_SLL2
            | LINKTYPE_RAW
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
    )
}

fn unsupported(linktype: u32) -> Error {
    usage!("unsupported link type {linktype} (supported: Ethernet, Linux cooked SLL/SLL2, raw IP)")
}

fn corrupt(e: pcap_file::PcapError) -> Error {
    match e {
        pcap_file::PcapError::IncompleteBuffer => Error::Runtime(anyhow::anyhow!(
            "truncated capture file: the last record is cut off"
        )),
        pcap_file::PcapError::IoError(e) => {
            Error::Runtime(anyhow::Error::new(e).context("reading the capture file"))
        }
        other => Error::Runtime(anyhow::anyhow!("corrupt capture file: {other}")),
    }
}

impl<R: Read> PcapReader<R> {
    /// Read and check the file header. A bad header is a usage error (wrong file).
    pub fn new(inp: R) -> Result<Self> {
        let mut inp = io::BufReader::with_capacity(1 << 16, inp);
        let head = inp
            .fill_buf()
            .map_err(|e| Error::Runtime(anyhow::Error::new(e).context("reading")))?;
        if head.len() < 4 {
            return Err(usage!("not a pcap or pcapng file (too short)"));
        }
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let bad = |e: pcap_file::PcapError| usage!("not a valid capture file ({e})");
        let src = match magic {
            0x0a0d_0d0a => {
                let r = pcap_file::pcapng::PcapNgReader::new(inp).map_err(bad)?;
                Source::Ng(r, Vec::new())
            }
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                let r = pcap_file::pcap::PcapReader::new(inp).map_err(bad)?;
                let lt = u32::from(r.header().datalink) & 0x0fff_ffff;
                if !supported(lt) {
                    return Err(unsupported(lt));
                }
                let nanos = r.header().ts_resolution == TsResolution::NanoSecond;
                Source::Pcap(r, lt, nanos)
            }
            _ => {
                return Err(usage!(
                    "not a pcap or pcapng file (bad magic number 0x{magic:08x})"
                ))
            }
        };
        Ok(PcapReader {
            src,
            scratch: Vec::new(),
        })
    }

    /// The next record, borrowed; `None` at the end of the file. A record cut off by the end
    /// of the file is an error (as in tcpdump).
    pub fn next_record(&mut self) -> Result<Option<RecordRef<'_>>> {
        let PcapReader { src, scratch } = self;
        match src {
            // Raw records: pcap-file's checked ones refuse `orig_len > snaplen`, which every
            // capture with a short snap length (`tcpdump -s 200`) has.
            Source::Pcap(r, lt, nanos) => match r.next_raw_packet() {
                None => Ok(None),
                Some(Err(e)) => Err(corrupt(e)),
                Some(Ok(p)) => {
                    let frac = if *nanos {
                        p.ts_frac.min(999_999_999)
                    } else {
                        p.ts_frac.min(999_999) * 1000
                    };
                    Ok(Some(RecordRef {
                        ts: Duration::new(u64::from(p.ts_sec), frac),
                        linktype: *lt,
                        orig_len: p.orig_len.max(p.data.len() as u32),
                        data: lend(p.data, scratch),
                        iface: None,
                    }))
                }
            },
            Source::Ng(r, ifaces) => {
                // The packet bytes are copied into `scratch` (no allocation once it has grown):
                // a borrow of the reader cannot leave this loop.
                let (ts, orig_len, iface) = loop {
                    let block = match r.next_block() {
                        None => return Ok(None),
                        Some(Err(e)) => return Err(corrupt(e)),
                        Some(Ok(b)) => b,
                    };
                    match block {
                        Block::SectionHeader(_) => ifaces.clear(),
                        Block::InterfaceDescription(idb) => {
                            let mut i = NgIface {
                                linktype: u32::from(idb.linktype) & 0x0fff_ffff,
                                units: 1_000_000,
                                name: None,
                            };
                            for o in &idb.options {
                                match o {
                                    InterfaceDescriptionOption::IfTsResol(r) => {
                                        let e = u32::from(r & 0x7f);
                                        i.units = if r & 0x80 != 0 {
                                            1u64.checked_shl(e).unwrap_or(1)
                                        } else {
                                            10u64.checked_pow(e).unwrap_or(1)
                                        };
                                    }
                                    InterfaceDescriptionOption::IfName(n) => {
                                        i.name = Some(n.to_string())
                                    }
                                    _ => {}
                                }
                            }
                            if !supported(i.linktype) {
                                return Err(unsupported(i.linktype));
                            }
                            ifaces.push(i);
                        }
                        Block::EnhancedPacket(epb) => {
                            let id = epb.interface_id as usize;
                            let Some(i) = ifaces.get(id) else {
                                return Err(Error::Runtime(anyhow::anyhow!(
                                    "corrupt capture file: packet for undeclared interface {id}"
                                )));
                            };
                            // pcap-file read the raw units as nanoseconds.
                            let raw = epb.timestamp.as_nanos();
                            let units = u128::from(i.units.max(1));
                            let secs = (raw / units) as u64;
                            let nanos = ((raw % units) * 1_000_000_000 / units) as u32;
                            scratch.clear();
                            scratch.extend_from_slice(&epb.data);
                            break (Duration::new(secs, nanos), epb.original_len, id);
                        }
                        Block::SimplePacket(spb) => {
                            if ifaces.is_empty() {
                                return Err(Error::Runtime(anyhow::anyhow!(
                                    "corrupt capture file: packet before any interface"
                                )));
                            }
                            scratch.clear();
                            scratch.extend_from_slice(&spb.data);
                            break (Duration::ZERO, spb.original_len, 0);
                        }
                        _ => {}
                    }
                };
                let i = &ifaces[iface];
                Ok(Some(RecordRef {
                    ts,
                    linktype: i.linktype,
                    data: scratch,
                    orig_len,
                    iface: i.name.as_deref(),
                }))
            }
        }
    }

    /// The next record as an owned, decoded packet; `None` at the end of the file. Records
    /// too short for their link-layer header are skipped.
    pub fn next_packet(&mut self) -> Result<Option<Packet>> {
        loop {
            let Some(r) = self.next_record()? else {
                return Ok(None);
            };
            let iface = r.iface.unwrap_or("pcap").to_string();
            if let Some(p) =
                Packet::from_record(UNIX_EPOCH + r.ts, r.linktype, r.data.to_vec(), 0, iface)
            {
                return Ok(Some(p));
            }
        }
    }
}

pub(super) fn open_pcap(path: &Path) -> Result<PcapReader> {
    let f = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => usage!("cannot read {}: no such file", path.display()),
        io::ErrorKind::PermissionDenied => {
            usage!("cannot read {}: permission denied", path.display())
        }
        _ => Error::Runtime(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    })?;
    PcapReader::new(BufReader::new(f)).map_err(|e| match e {
        Error::Usage(m) => usage!("{}: {m}", path.display()),
        other => other,
    })
}

/// Open a pcap or pcapng file for streaming (see [`PcapReader`]).
pub fn pcap_reader(path: &Path) -> Result<PcapReader> {
    open_pcap(path)
}

/// Read a whole pcap or pcapng file.
pub fn read_pcap(path: &Path) -> Result<Vec<Packet>> {
    let mut r = open_pcap(path)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().map_err(|e| match e {
        Error::Runtime(e) => Error::Runtime(e.context(format!("reading {}", path.display()))),
        other => other,
    })? {
        out.push(p);
    }
    Ok(out)
}
