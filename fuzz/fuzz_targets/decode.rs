#![no_main]
//! Any byte string through the capture decoder and the packet renderers: no panic allowed.

use libfuzzer_sys::fuzz_target;
use lbctl::sys::capture::tcpdump::{Printer, Record};
use lbctl::sys::capture::{decode, decode_record, Direction, Packet};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    // Every link type through the decoder and the tcpdump printer.
    let mut out = Vec::new();
    for lt in [1, 101, 113, 276] {
        let _ = decode_record(lt, data);
        let r = Record { secs: 0, micros: 0, linktype: lt, data, orig_len: data.len() as u32 };
        Printer::new().line(&mut out, &r, Some("eth0"));
    }
    if let Some(p) = Packet::from_frame(std::time::SystemTime::UNIX_EPOCH, 1, "eth0", Direction::In, data.to_vec()) {
        let _ = p.to_string();
        let _ = p.to_json();
    }
});
