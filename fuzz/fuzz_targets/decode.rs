#![no_main]
//! Any byte string through the capture decoder and the packet renderers: no panic allowed.

use libfuzzer_sys::fuzz_target;
use lbctl::sys::capture::{decode, Direction, Packet};

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    if let Some(p) = Packet::from_frame(std::time::SystemTime::UNIX_EPOCH, 1, "eth0", Direction::In, data.to_vec()) {
        let _ = p.to_string();
        let _ = p.to_json();
    }
});
