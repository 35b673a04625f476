//! TLS with rustls: the server certificate, and client certificates when a CA is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {what} from \"{path}\": {reason}")]
    Pem {
        /// What was expected in the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// rustls refused the certificates or key.
    #[error("cannot use the TLS certificate and key")]
    Config(#[source] rustls::Error),
    /// The client CA bundle cannot verify clients.
    #[error("cannot verify client certificates with \"{path}\": {reason}")]
    ClientCa {
        /// The CA bundle.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The files TLS is set up from.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle; when given, every client must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// The rustls server configuration for `files`, offering HTTP/2 and HTTP/1.1.
///
/// # Errors
///
/// [`TlsError`] naming the file that cannot be read or used.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&files.cert, "a certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|err| TlsError::Pem {
        what: "a private key",
        path: files.key.clone(),
        reason: err.to_string(),
    })?;

    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path, "CA certificates")? {
                roots.add(cert).map_err(|err| TlsError::ClientCa {
                    path: path.clone(),
                    reason: err.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|err| TlsError::ClientCa {
                    path: path.clone(),
                    reason: err.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |reason: String| TlsError::Pem { what, path: path.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem_error(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(err.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE block found".to_owned()));
    }
    Ok(certs)
}
