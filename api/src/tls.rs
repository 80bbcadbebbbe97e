//! TLS for every connection (rustls through tonic): the cluster has its own certificate authority;
//! each node has a certificate from it naming `node-<id>.suanpan` (what peers check: a node proves
//! its id with it, so a peer's Raft frames can be tied to the sender) and `cluster.suanpan` (what
//! clients check: "a node of this cluster", whichever address they dialled).
//!
//! Between nodes TLS is mutual: a node dials a peer as `node-<to>.suanpan` with its own certificate
//! as client identity; the server side asks every connection for a certificate but only requires
//! one on the `Peer` service (clients authenticate with signed requests, not certificates).
//!
//! Files in a TLS directory (`suanpan certs init --dir D`): `ca.pem`, `ca.key` (keep it offline
//! once the nodes have their certificates), `node-<id>.pem`, `node-<id>.key`.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The name every node certificate carries for clients.
pub const CLUSTER_SERVER_NAME: &str = "cluster.suanpan";

/// The name that proves a certificate belongs to node `id`.
pub fn node_server_name(id: u64) -> String {
    format!("node-{id}.suanpan")
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Certificate(String),
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A node's TLS material: the cluster CA and its own certificate and key (PEM).
#[derive(Clone, Debug)]
pub struct NodeTls {
    pub id: u64,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl NodeTls {
    /// Reads `ca.pem`, `node-<id>.pem` and `node-<id>.key` from `dir`.
    pub fn load(dir: &Path, id: u64) -> Result<NodeTls, TlsError> {
        Ok(NodeTls {
            id,
            ca_pem: read(&dir.join("ca.pem"))?,
            cert_pem: read(&dir.join(format!("node-{id}.pem")))?,
            key_pem: read(&dir.join(format!("node-{id}.key")))?,
        })
    }

    /// Dialling peer `to`: verify it is that node, present this node's certificate.
    pub fn peer_client_config(&self, to: u64) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(node_server_name(to))
    }

    #[cfg(feature = "server")]
    pub fn server_config(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
    }
}

/// A client's TLS: trust the cluster CA, expect a node of the cluster.
pub fn client_config(ca_pem: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(CLUSTER_SERVER_NAME)
}

/// Reads a CA file for a client.
pub fn load_ca(path: &Path) -> Result<String, TlsError> {
    read(path)
}

/// Whether a peer's (already chain-verified) leaf certificate names node `id`.
#[cfg(feature = "server")]
pub fn certificate_names_node(leaf_der: &[u8], id: u64) -> bool {
    let der = rustls_pki_types::CertificateDer::from(leaf_der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    let Ok(name) = rustls_pki_types::ServerName::try_from(node_server_name(id)) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Generating the CA and node certificates (`suanpan certs`)

#[cfg(feature = "server")]
mod generate {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    /// The CA's parameters: fixed, so the issuer can be rebuilt from `ca.key` alone to sign a
    /// later node's certificate (signing needs the issuer's name and key, not its certificate).
    fn ca_params() -> CertificateParams {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Suanpan cluster CA");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2124, 1, 1);
        p
    }

    fn write(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
        let io = |source| TlsError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let _ = secret;
        let mut f = o.open(path).map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)
    }

    fn cert_err(e: rcgen::Error) -> TlsError {
        TlsError::Certificate(e.to_string())
    }

    /// Creates `ca.pem` and `ca.key` in `dir` (refuses to overwrite).
    pub fn create_ca(dir: &Path) -> Result<(), TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = ca_params().self_signed(&key).map_err(cert_err)?;
        write(&dir.join("ca.key"), &key.serialize_pem(), true)?;
        write(&dir.join("ca.pem"), &cert.pem(), false)
    }

    /// Creates `node-<id>.pem` and `node-<id>.key` in `dir`, signed by the CA there. `hosts`: extra
    /// names or IP addresses the certificate carries (for clients that check the host).
    pub fn create_node(
        dir: &Path,
        id: u64,
        hosts: &[String],
    ) -> Result<std::path::PathBuf, TlsError> {
        if id == 0 {
            return Err(TlsError::Certificate("node id must be non-zero".into()));
        }
        let ca_key = KeyPair::from_pem(&read(&dir.join("ca.key"))?).map_err(cert_err)?;
        let issuer = Issuer::new(ca_params(), ca_key);
        let mut names = vec![node_server_name(id), CLUSTER_SERVER_NAME.to_string()];
        names.extend(hosts.iter().cloned());
        let mut p = CertificateParams::new(names).map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_server_name(id));
        p.distinguished_name = dn;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = p.signed_by(&key, &issuer).map_err(cert_err)?;
        write(
            &dir.join(format!("node-{id}.key")),
            &key.serialize_pem(),
            true,
        )?;
        let path = dir.join(format!("node-{id}.pem"));
        write(&path, &cert.pem(), false)?;
        Ok(path)
    }
}

#[cfg(feature = "server")]
pub use generate::{create_ca, create_node};
