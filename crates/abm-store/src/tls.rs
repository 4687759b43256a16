//! TLS for PostgreSQL (rustls), with libpq's `sslmode` values in the URL:
//!
//! | `sslmode` | what happens |
//! |---|---|
//! | `disable` | plain TCP |
//! | `prefer` (default) | TLS when the server offers it, else plain; the certificate is not checked |
//! | `require` | TLS or fail; the certificate is not checked (as libpq without a root certificate) |
//! | `verify-ca` | TLS, the chain checked against `sslrootcert=FILE` (PEM) or the system's roots |
//! | `verify-full` | `verify-ca` and the host name matches the certificate |
//!
//! `sslrootcert` is read here; both keys are taken out of the URL before it reaches the driver
//! (which knows only `disable`, `prefer` and `require`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The URL without `sslmode`/`sslrootcert`, the mode, and the root certificate file.
pub fn split_url(url: &str) -> Result<(String, SslMode, Option<String>), StoreError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut mode = SslMode::Prefer;
    let mut root = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => {
                mode = match v {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(StoreError::Open {
                            url: crate::redact(url),
                            reason: format!(
                                "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                            ),
                        })
                    }
                }
            }
            "sslrootcert" => root = Some(percent_decode(v)),
            _ => rest.push(pair),
        }
    }
    let driver_mode = match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        _ => "require",
    };
    rest.push(match driver_mode {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((format!("{base}?{}", rest.join("&")), mode, root))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls configuration for `mode`.
pub fn client_config(mode: SslMode, root: Option<&str>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let mut roots = RootCertStore::empty();
            match root {
                Some(path) => {
                    let pem =
                        std::fs::read(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
                    use rustls::pki_types::pem::PemObject;
                    for cert in CertificateDer::pem_slice_iter(&pem) {
                        let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                    }
                    if roots.is_empty() {
                        return Err(format!("sslrootcert {path}: no certificate in the file"));
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    for cert in found.certs {
                        let _ = roots.add(cert);
                    }
                    if roots.is_empty() {
                        return Err(
                            "no root certificates on this system: give sslrootcert=FILE".into()
                        );
                    }
                }
            }
            let roots = Arc::new(roots);
            if mode == SslMode::VerifyFull {
                Ok(builder.with_root_certificates(roots).with_no_client_auth())
            } else {
                let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                .map_err(|e| e.to_string())?;
                Ok(builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Relaxed {
                        provider,
                        chain: Some(chain),
                    }))
                    .with_no_client_auth())
            }
        }
        _ => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Relaxed {
                provider,
                chain: None,
            }))
            .with_no_client_auth()),
    }
}

/// The relaxed checks of libpq's `prefer`/`require` (no certificate check: `chain` is `None`)
/// and `verify-ca` (the chain must lead to a trusted root; the host name is not compared).
/// Handshake signatures are always verified with the provider's algorithms.
#[derive(Debug)]
struct Relaxed {
    provider: Arc<rustls::crypto::CryptoProvider>,
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_rootcert_leave_the_url() {
        let (u, m, r) =
            split_url("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&x=1")
                .unwrap();
        assert_eq!(u, "postgres://u@h/db?x=1&sslmode=require");
        assert_eq!(m, SslMode::VerifyFull);
        assert_eq!(r.as_deref(), Some("/tmp/ca.pem"));
        let (u, m, _) = split_url("postgres://u@h/db").unwrap();
        assert_eq!(
            (u.as_str(), m),
            ("postgres://u@h/db?sslmode=prefer", SslMode::Prefer)
        );
        let (u, m, _) = split_url("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(
            (u.as_str(), m),
            ("postgres://u@h/db?sslmode=disable", SslMode::Disable)
        );
        assert!(split_url("postgres://u@h/db?sslmode=sometimes").is_err());
    }
}

#[cfg(test)]
mod server_tests {
    use crate::db::{Conn, ConnExt, RowExt};
    use crate::postgres::Postgres;
    use std::time::Duration;

    fn url(mode: &str) -> String {
        let admin = std::env::var("ABM_TEST_PG_URL").expect("ABM_TEST_PG_URL is not set");
        let sep = if admin.contains('?') { '&' } else { '?' };
        format!("{admin}{sep}sslmode={mode}")
    }

    fn encrypted(c: &mut Postgres) -> bool {
        c.query_one(
            "SELECT CAST(ssl AS INT) FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
            |r| Ok(r.i(0)? == 1),
        )
        .unwrap()
        .unwrap()
    }

    /// The local server offers TLS (Debian's default): `require` and `prefer` encrypt,
    /// `disable` does not, `verify-full` refuses a certificate no root vouches for.
    #[test]
    #[ignore = "needs PostgreSQL with TLS: set ABM_TEST_PG_URL (run by .ci/run)"]
    fn sslmodes_against_the_server() {
        let t = Duration::from_secs(5);
        let mut c = Postgres::open(&url("disable"), t).unwrap();
        assert!(!encrypted(&mut c));
        assert_eq!(c.backend(), crate::db::Backend::Postgres);
        let mut c = match Postgres::open(&url("require"), t) {
            Ok(c) => c,
            Err(e) if e.to_string().contains("server does not support TLS") => {
                eprintln!("SKIPPED: this PostgreSQL server has no TLS: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(encrypted(&mut c));
        let mut c = Postgres::open(&url("prefer"), t).unwrap();
        assert!(encrypted(&mut c));
        let e = Postgres::open(&url("verify-full"), t)
            .err()
            .expect("an unknown issuer");
        assert!(e.to_string().contains("certificate"), "{e}");
        let e = Postgres::open(&url("verify-ca&sslrootcert=/nonexistent.pem"), t)
            .err()
            .expect("no such file");
        assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
    }
}
