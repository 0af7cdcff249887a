//! TLS for the `https` health check (rustls with the ring provider). As keepalived's SSL_GET,
//! the certificate is not verified unless asked: a health check asks "does the service answer",
//! and backends commonly carry certificates for the VIP's name, self-signed or internal. The
//! handshake signatures are still checked, so the peer must hold the key of the certificate
//! it shows.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// Accepts any certificate; checks the handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn config(verify: bool) -> Result<ClientConfig, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    Ok(if verify {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err("verify_tls = true but no CA certificate was found on this host".into());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    })
}

/// A TLS client stream over `tcp`. `sni`: the name sent (and verified, with `verify`); without
/// it the server is named by its address (no SNI is sent then).
pub struct Tls(StreamOwned<ClientConnection, TcpStream>);

impl Tls {
    pub fn connect(
        tcp: TcpStream,
        addr: IpAddr,
        sni: Option<&str>,
        verify: bool,
    ) -> Result<Tls, String> {
        let name: ServerName<'static> = match sni {
            Some(n) => ServerName::try_from(n.to_string())
                .map_err(|e| format!("invalid TLS server name '{n}': {e}"))?,
            None => ServerName::IpAddress(addr.into()),
        };
        let conn = ClientConnection::new(Arc::new(config(verify)?), name)
            .map_err(|e| format!("TLS set-up: {e}"))?;
        Ok(Tls(StreamOwned::new(conn, tcp)))
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.0.sock
    }
}

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
