//! Classic pcap files: written with Ethernet link type; read with Ethernet or Linux cooked
//! (SLL, SLL2) link types.

use super::*;

/// Writes classic pcap (LINKTYPE_ETHERNET, microsecond timestamps), one `write` per packet so
/// the file is complete up to the last packet even if the process is killed.
pub struct PcapWriter<W: Write = File> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Write the file header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&PCAP_MAGIC_US.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&(SNAPLEN as u32).to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        out.flush()?;
        Ok(PcapWriter { out })
    }

    pub fn write(&mut self, p: &Packet) -> io::Result<()> {
        let (secs, us) = split_ts(p.ts);
        let data = &p.frame[..p.frame.len().min(SNAPLEN)];
        let mut rec = Vec::with_capacity(16 + data.len());
        rec.extend_from_slice(&(secs.clamp(0, u32::MAX as i64) as u32).to_le_bytes());
        rec.extend_from_slice(&us.to_le_bytes());
        rec.extend_from_slice(&(data.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(p.frame.len() as u32).to_le_bytes());
        rec.extend_from_slice(data);
        self.out.write_all(&rec)?;
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Write `packets` to a new pcap file at `path`.
pub fn write_pcap(path: &Path, packets: &[Packet]) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let mut w = PcapWriter::new(File::create(path).with_context(ctx)?).with_context(ctx)?;
    for p in packets {
        w.write(p).with_context(ctx)?;
    }
    Ok(())
}

/// Reads classic pcap: either byte order, micro- or nanosecond timestamps, Ethernet frames
/// (direction In, interface `pcap`) or Linux cooked captures (`tcpdump -i any`: SLL and SLL2,
/// direction from the packet type, destination MAC unknown and shown as zero).
pub struct PcapReader<R: Read = BufReader<File>> {
    inp: R,
    swapped: bool,
    nanos: bool,
    linktype: u32,
}

impl<R: Read> PcapReader<R> {
    /// Read and check the file header. A bad header is a usage error (wrong file).
    pub fn new(mut inp: R) -> Result<Self> {
        let mut h = [0u8; 24];
        inp.read_exact(&mut h)
            .map_err(|_| usage!("not a pcap file (shorter than a pcap header)"))?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swapped, nanos) = match magic {
            PCAP_MAGIC_US => (false, false),
            PCAP_MAGIC_NS => (false, true),
            m if m == PCAP_MAGIC_US.swap_bytes() => (true, false),
            m if m == PCAP_MAGIC_NS.swap_bytes() => (true, true),
            0x0a0d_0d0a => {
                return Err(usage!(
                    "pcapng is not supported; convert it first: tcpdump -r IN.pcapng -w OUT.pcap"
                ))
            }
            _ => return Err(usage!("not a pcap file (bad magic number 0x{magic:08x})")),
        };
        let mut r = PcapReader {
            inp,
            swapped,
            nanos,
            linktype: 0,
        };
        r.linktype = r.u32_at(&h, 20) & 0x0fff_ffff;
        if !matches!(
            r.linktype,
            LINKTYPE_ETHERNET | LINKTYPE_LINUX_SLL | LINKTYPE_LINUX_SLL2
        ) {
            return Err(usage!(
                "unsupported pcap link type {} (supported: Ethernet, Linux cooked)",
                r.linktype
            ));
        }
        Ok(r)
    }

    fn u32_at(&self, b: &[u8], i: usize) -> u32 {
        let v = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if self.swapped {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }

    /// The next packet, `None` at the end of the file. Records too short to hold a frame are
    /// skipped; a record cut off by the end of the file is an error (as in tcpdump).
    pub fn next_packet(&mut self) -> Result<Option<Packet>> {
        loop {
            let mut h = [0u8; 16];
            match read_full(&mut self.inp, &mut h)? {
                0 => return Ok(None),
                16 => {}
                n => {
                    return Err(Error::Runtime(anyhow::anyhow!(
                        "truncated pcap file: record header has {n} of 16 bytes"
                    )))
                }
            }
            let secs = self.u32_at(&h, 0);
            let frac = self.u32_at(&h, 4);
            let incl = self.u32_at(&h, 8) as usize;
            if incl > 16 << 20 {
                return Err(Error::Runtime(anyhow::anyhow!(
                    "corrupt pcap file: record of {incl} bytes"
                )));
            }
            let mut data = vec![0u8; incl];
            let got = read_full(&mut self.inp, &mut data)?;
            if got < incl {
                return Err(Error::Runtime(anyhow::anyhow!(
                    "truncated pcap file: record has {got} of {incl} bytes"
                )));
            }
            let nanos = if self.nanos {
                frac.min(999_999_999)
            } else {
                frac.min(999_999) * 1000
            };
            let ts = UNIX_EPOCH + Duration::new(u64::from(secs), nanos);
            let (dir, frame) = match self.linktype {
                LINKTYPE_LINUX_SLL => match cooked_to_ethernet(&data, false) {
                    Some(x) => x,
                    None => continue,
                },
                LINKTYPE_LINUX_SLL2 => match cooked_to_ethernet(&data, true) {
                    Some(x) => x,
                    None => continue,
                },
                _ => (Direction::In, data),
            };
            if let Some(p) = Packet::from_frame(ts, 0, "pcap", dir, frame) {
                return Ok(Some(p));
            }
        }
    }
}

/// Read until `buf` is full or the input ends; returns the bytes read.
pub(super) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Runtime(
                    anyhow::Error::new(e).context("reading pcap"),
                ))
            }
        }
    }
    Ok(got)
}

/// A Linux cooked header (SLL: 16 bytes; SLL2: 20 bytes) becomes an Ethernet header with the
/// link-layer source address and a zero destination.
pub(super) fn cooked_to_ethernet(d: &[u8], v2: bool) -> Option<(Direction, Vec<u8>)> {
    let (hdr, pkttype, halen, addr, proto) = if v2 {
        if d.len() < 20 {
            return None;
        }
        (20, d[10], d[11], 12, be16(d, 0))
    } else {
        if d.len() < 16 {
            return None;
        }
        (16, be16(d, 0) as u8, be16(d, 4) as u8, 6, be16(d, 14))
    };
    let mut src = [0u8; 6];
    if halen == 6 {
        src.copy_from_slice(&d[addr..addr + 6]);
    }
    let mut frame = Vec::with_capacity(14 + d.len() - hdr);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&proto.to_be_bytes());
    frame.extend_from_slice(&d[hdr..]);
    Some((Direction::from_pkttype(pkttype), frame))
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

/// Open a pcap file for streaming (see [`PcapReader`]).
pub fn pcap_reader(path: &Path) -> Result<PcapReader> {
    open_pcap(path)
}

/// Read a whole pcap file.
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
