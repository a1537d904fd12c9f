//! TLS on the proxy listener. Certificates are read and checked with the rest of the config
//! (so `gateway -t` and a reload report a missing file or a key that does not belong to its
//! certificate), kept in the snapshot, and chosen per handshake by the name the client asks for
//! (SNI, by `proxy::tls_accept`): a reload swaps them for new connections while open ones keep
//! theirs.

use crate::config::file::TlsListenConfig;
use crate::config::ConfigErrors;
use pingora::protocols::tls::TlsRef;
use pingora::tls::error::ErrorStack;
use pingora::tls::ext;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::x509::X509;
use std::collections::HashMap;

/// One certificate chain with its key, and the names it serves.
pub struct Certificate {
    /// Leaf first.
    chain: Vec<X509>,
    key: PKey<Private>,
    /// DNS names from the leaf (subject alternative names, else the common name), lower case;
    /// `*.example.com` for a wildcard.
    pub names: Vec<String>,
}

/// The proxy listener's certificates, by name.
pub struct Certificates {
    list: Vec<Certificate>,
    exact: HashMap<String, usize>,
    /// `example.com` for `*.example.com`.
    wildcard: HashMap<String, usize>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&[String]> = self.list.iter().map(|c| c.names.as_slice()).collect();
        f.debug_struct("Certificates")
            .field("names", &names)
            .finish()
    }
}

impl Certificates {
    /// Reads every certificate and key of `listen.proxy_tls`; `None` after reporting problems.
    pub fn load(cfg: &TlsListenConfig, errors: &mut ConfigErrors) -> Option<Certificates> {
        let path = "listen.proxy_tls";
        if cfg.certificates.is_empty() {
            errors.push(
                format!("{path}.certificates"),
                "must list at least one certificate",
            );
            return None;
        }
        let mut list = Vec::with_capacity(cfg.certificates.len());
        for (i, c) in cfg.certificates.iter().enumerate() {
            let at = format!("{path}.certificates[{i}]");
            if let Some(cert) = Certificate::load(&at, &c.cert, &c.key, errors) {
                list.push(cert);
            }
        }
        if list.len() < cfg.certificates.len() {
            return None;
        }
        let (mut exact, mut wildcard) = (HashMap::new(), HashMap::new());
        for (i, c) in list.iter().enumerate() {
            for name in &c.names {
                // The first certificate listed for a name serves it.
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert(i),
                    None => exact.entry(name.clone()).or_insert(i),
                };
            }
        }
        Some(Certificates {
            list,
            exact,
            wildcard,
        })
    }

    /// The certificate for `sni`: an exact name, else a wildcard one level up, else the first.
    pub fn pick(&self, sni: Option<&str>) -> Option<&Certificate> {
        let found = sni
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|name| {
                self.exact.get(&name).or_else(|| {
                    let (_, parent) = name.split_once('.')?;
                    self.wildcard.get(parent)
                })
            });
        self.list.get(found.copied().unwrap_or(0))
    }
}

impl Certificate {
    /// Hands this certificate, its chain and key to a handshake under way.
    pub fn install(&self, ssl: &mut TlsRef) -> Result<(), ErrorStack> {
        let mut chain = self.chain.iter();
        if let Some(leaf) = chain.next() {
            ext::ssl_use_certificate(ssl, leaf)?;
        }
        ext::ssl_use_private_key(ssl, &self.key)?;
        chain.try_for_each(|c| ext::ssl_add_chain_cert(ssl, c))
    }

    fn load(at: &str, cert: &str, key: &str, errors: &mut ConfigErrors) -> Option<Certificate> {
        let read = |field: &str, file: &str, errors: &mut ConfigErrors| match std::fs::read(file) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                errors.push(format!("{at}.{field}"), format!("cannot read {file}: {e}"));
                None
            }
        };
        let chain = read("cert", cert, errors).and_then(|pem| match X509::stack_from_pem(&pem) {
            Ok(chain) if !chain.is_empty() => Some(chain),
            _ => {
                let problem = format!("{cert} holds no PEM certificate");
                errors.push(format!("{at}.cert"), problem);
                None
            }
        });
        let key_pem = read("key", key, errors)?;
        let Ok(private) = PKey::private_key_from_pem(&key_pem) else {
            let problem = format!("{key} holds no PEM private key");
            errors.push(format!("{at}.key"), problem);
            return None;
        };
        let chain = chain?;
        let leaf = chain.first()?;
        let matches = leaf
            .public_key()
            .is_ok_and(|public| public.public_eq(&private));
        if !matches {
            let problem = format!("{key} is not the private key of the certificate in {cert}");
            errors.push(format!("{at}.key"), problem);
            return None;
        }
        let names = names(leaf);
        Some(Certificate {
            chain,
            key: private,
            names,
        })
    }
}

/// The DNS names a leaf certificate serves.
fn names(leaf: &X509) -> Vec<String> {
    let from_san: Vec<String> = leaf
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    if !from_san.is_empty() {
        return from_san;
    }
    leaf.subject_name()
        .entries_by_nid(pingora::tls::nid::Nid::COMMONNAME)
        .filter_map(|e| e.data().to_string().ok().map(|s| s.to_ascii_lowercase()))
        .collect()
}
