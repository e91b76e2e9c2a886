//! Mutual TLS for cluster links, when the node is given a certificate: every link is a
//! TLS 1.3 session in which both ends present a certificate signed by the cluster's CA,
//! under the cookie handshake of ractor_cluster.
//!
//! Any certificate the CA signed admits its holder as a node, so the CA must be the
//! cluster's own. A dialing node checks the certificate against the address it dialed:
//! the host part of the peer's `host:port` (an IP SAN for an IP address, a DNS SAN for a
//! name). Nodes find each other at the `cluster.listen` address each one registers, so a
//! node's certificate needs an IP SAN for it, and a DNS SAN for any name the others list
//! in their peers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig, version};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// Longest a TLS handshake may take, either way (a peer that stalls it holds an inbound
/// slot, or the dialer, until then).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// The PEM files of a node: its certificate chain, its private key, and the CA that
/// signs every node's certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot load {key} from {path}: {message}")]
    File {
        key: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("cannot use cluster.tls_cert {cert} with cluster.tls_key {key}: {message}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// This node's TLS settings for both ends of a link.
#[derive(Clone)]
pub struct ClusterTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl ClusterTls {
    /// Reads and checks the files; an unreadable or unusable one is named in the error.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let chain = certificates(&files.cert, "cluster.tls_cert")?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| TlsError::File {
            key: "cluster.tls_key",
            path: files.key.clone(),
            message: pem_message(error, "private key"),
        })?;
        let mut roots = RootCertStore::empty();
        for ca in certificates(&files.ca, "cluster.tls_ca")? {
            roots.add(ca).map_err(|error| TlsError::File {
                key: "cluster.tls_ca",
                path: files.ca.clone(),
                message: error.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let identity = |message: String| TlsError::Identity {
            cert: files.cert.clone(),
            key: files.key.clone(),
            message,
        };
        // One provider, named here: both ring and aws-lc-rs are in the build, and
        // rustls refuses to guess between them.
        let provider = Arc::new(aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|error| TlsError::File {
                key: "cluster.tls_ca",
                path: files.ca.clone(),
                message: error.to_string(),
            })?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&version::TLS13])
            .map_err(|error| identity(error.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|error| identity(error.to_string()))?;
        // Every link is verified afresh: no resumed sessions (links are few and long-lived).
        server.send_tls13_tickets = 0;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&version::TLS13])
            .map_err(|error| identity(error.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|error| identity(error.to_string()))?;
        client.resumption = Resumption::disabled();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// The server side of an inbound link; `None` (logged) when the peer presented no
    /// certificate of the cluster's CA, or took too long.
    pub async fn accept(&self, stream: TcpStream, peer: &str) -> Option<TlsStream<TcpStream>> {
        handshake(peer, self.acceptor.accept(stream))
            .await
            .map(TlsStream::Server)
    }

    /// The client side of a link dialed to `target` (`host:port`), whose certificate must
    /// name that host; `None` (logged) when it does not, or the handshake failed.
    pub async fn connect(&self, stream: TcpStream, target: &str) -> Option<TlsStream<TcpStream>> {
        let Some(name) = server_name(target) else {
            tracing::warn!(peer = %target, "cluster peer address has no host to verify; no link");
            return None;
        };
        handshake(target, self.connector.connect(name, stream))
            .await
            .map(TlsStream::Client)
    }
}

/// Runs a handshake to its end or [`HANDSHAKE_TIMEOUT`]; a failure is logged.
async fn handshake<S>(
    peer: &str,
    handshake: impl std::future::Future<Output = std::io::Result<S>>,
) -> Option<S> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "cluster TLS handshake failed; no link");
            None
        }
        Err(_) => {
            tracing::warn!(%peer, "cluster TLS handshake timed out; no link");
            None
        }
    }
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message| TlsError::File {
        key,
        path: path.to_owned(),
        message,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|sections| sections.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(pem_message(e, "certificate")))?;
    if certificates.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certificates)
}

fn pem_message(error: tokio_rustls::rustls::pki_types::pem::Error, what: &str) -> String {
    use tokio_rustls::rustls::pki_types::pem::Error;
    match error {
        Error::Io(error) => error.to_string(),
        Error::NoItemsFound => format!("no PEM {what} in the file"),
        other => format!("not a PEM file: {other}"),
    }
}

/// The name a dialed peer's certificate must carry: the host of `host:port`.
fn server_name(target: &str) -> Option<ServerName<'static>> {
    if let Ok(addr) = target.parse::<std::net::SocketAddr>() {
        return Some(ServerName::IpAddress(addr.ip().into()));
    }
    let (host, _port) = target.rsplit_once(':')?;
    ServerName::try_from(host.to_owned()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialed_host_is_the_name_to_verify() {
        let ip =
            |text: &str| ServerName::IpAddress(text.parse::<std::net::IpAddr>().unwrap().into());
        assert_eq!(server_name("10.0.0.7:9001"), Some(ip("10.0.0.7")));
        assert_eq!(server_name("[fd00::7]:9001"), Some(ip("fd00::7")));
        assert_eq!(
            server_name("node-2.internal:9001"),
            Some(ServerName::try_from("node-2.internal").unwrap())
        );
        assert_eq!(server_name("no-port"), None);
        assert_eq!(server_name("bad host:9001"), None);
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = std::env::temp_dir().join(format!("botwave-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        let files = TlsFiles {
            cert: garbage.clone(),
            key: garbage.clone(),
            ca: garbage.clone(),
        };
        let error = ClusterTls::load(&files).err().unwrap().to_string();
        assert!(
            error.contains("cluster.tls_cert") && error.contains("garbage.pem"),
            "{error}"
        );
        let files = TlsFiles {
            cert: missing.clone(),
            ..files
        };
        let error = ClusterTls::load(&files).err().unwrap().to_string();
        assert!(
            error.contains("cluster.tls_cert") && error.contains("missing.pem"),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
