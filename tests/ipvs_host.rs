//! Read-only smoke test on the build host. Most CI hosts have no IPVS (the
//! project's CI kernel is built without it): then opening the client must
//! give the clear "no IPVS" error. Where IPVS exists, only reads are tried.
use lbctl::ipvs::{Client, Error};

#[test]
fn open_client_on_this_host() {
    match Client::open() {
        Err(e @ Error::NoIpvs) => {
            let s = e.to_string();
            assert!(s.contains("modprobe ip_vs"), "{s}");
            assert_eq!(e.errno(), Some(libc::ENOENT));
        }
        Err(e @ Error::Permission { .. }) => assert!(e.to_string().contains("root"), "{e}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(mut c) => match c.info() {
            Ok(i) => assert!(i.version > 0),
            Err(e @ Error::Permission { .. }) => {
                assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}")
            }
            Err(e) => panic!("unexpected error: {e}"),
        },
    }
}
