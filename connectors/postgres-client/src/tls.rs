//! TLS for both connection kinds, with libpq's `sslmode` semantics on rustls (ring provider).
//!
//! | sslmode | root certificate configured | verification |
//! |---|---|---|
//! | prefer, require | no | none: encrypted, but any certificate is accepted |
//! | prefer, require | yes | chain (as libpq does when a root file exists) |
//! | verify-ca | either | chain to a trusted root, host name ignored |
//! | verify-full | either | chain and host name (DNS name or IP address SAN) |
//!
//! Roots come from `sslrootcert` (a PEM file), or the platform's store when it is absent or
//! `system`, falling back to the bundled Mozilla roots when the platform has none. Signatures
//! of the handshake itself are always checked, whatever the certificate policy.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::{Error as PemError, PemObject as _};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use crate::config::{PgConfig, SslMode};
use crate::error::{Error, Result};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verification {
    /// Encrypt only.
    None,
    /// The chain must lead to a trusted root; any host name.
    Chain,
    /// Chain and host name.
    Full,
}

/// The verification an sslmode asks for; `None` for `disable` (no TLS at all).
pub(crate) fn verification(cfg: &PgConfig) -> Option<Verification> {
    match cfg.sslmode {
        SslMode::Disable => None,
        SslMode::Prefer | SslMode::Require if cfg.sslrootcert.is_none() => Some(Verification::None),
        SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => Some(Verification::Chain),
        SslMode::VerifyFull => Some(Verification::Full),
    }
}

/// The name presented for SNI and checked under `verify-full`.
pub(crate) fn server_name(cfg: &PgConfig) -> Result<ServerName<'static>> {
    ServerName::try_from(cfg.host.clone()).map_err(|_| {
        Error::config(format!(
            "host \"{}\" is not a valid DNS name or IP address",
            cfg.host
        ))
    })
}

/// A TLS connector for `cfg`; `cfg.sslmode` must not be `disable`.
pub(crate) fn connector(cfg: &PgConfig, verification: Verification) -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("tls configuration: {e}")))?;
    let config = match verification {
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Verification::Chain | Verification::Full => {
            let roots = Arc::new(root_store(cfg)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| Error::config(format!("tls verifier: {e}")))?;
            if verification == Verification::Full {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly { inner: webpki }))
                    .with_no_client_auth()
            }
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn root_store(cfg: &PgConfig) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match cfg.sslrootcert.as_deref() {
        Some(path) if path != Path::new("system") => {
            let err = |source| Error::RootCertificate {
                path: path.to_path_buf(),
                source,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| match e {
                    PemError::Io(io) => err(io),
                    other => err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        other.to_string(),
                    )),
                })?;
            let (added, _ignored) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "no PEM certificate in the file",
                )));
            }
        }
        _ => {
            let native = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(native.certs);
            if store.is_empty() {
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    Ok(store)
}

/// `require` without a root certificate: encryption without authentication, as libpq does.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full WebPKI check, except that a certificate valid for another name passes.
/// WebPKI checks the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
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
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> PgConfig {
        PgConfig::parse(url).expect("valid url")
    }

    #[test]
    fn sslmode_to_verification() {
        let cases = [
            ("disable", None),
            ("prefer", Some(Verification::None)),
            ("require", Some(Verification::None)),
            ("prefer&sslrootcert=/ca.pem", Some(Verification::Chain)),
            ("require&sslrootcert=/ca.pem", Some(Verification::Chain)),
            ("verify-ca", Some(Verification::Chain)),
            ("verify-full", Some(Verification::Full)),
            ("verify-full&sslrootcert=/ca.pem", Some(Verification::Full)),
        ];
        for (query, expected) in cases {
            let c = cfg(&format!("postgres://u@h/d?sslmode={query}"));
            assert_eq!(verification(&c), expected, "{query}");
        }
    }

    #[test]
    fn missing_root_file_is_fatal() {
        let c = cfg("postgres://u@h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        let Err(err) = connector(&c, Verification::Full) else {
            panic!("a missing root file must fail");
        };
        assert!(matches!(err, Error::RootCertificate { .. }), "{err:?}");
        assert_eq!(err.class(), sluice_core::ErrorClass::Fatal);
    }
}
