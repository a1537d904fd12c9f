//! A test CA and the leaf certificates it signs (the `openssl` command), for TLS tests.

use super::auth::openssl;
use std::path::PathBuf;

/// A test CA and leaf certificates it signs, in a temp dir.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=Gateway Test CA",
        ]);
        Pki { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Issues `<name>.pem` / `<name>.key` for the names `sans` (DNS names, or IP addresses).
    pub fn issue(&self, name: &str, sans: &[&str]) {
        let p = |f: String| self.path(&f).to_string_lossy().into_owned();
        let ext = p(format!("{name}.ext"));
        let list: Vec<String> = sans
            .iter()
            .map(|s| match s.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{s}"),
                Err(_) => format!("DNS:{s}"),
            })
            .collect();
        std::fs::write(&ext, format!("subjectAltName={}\n", list.join(","))).expect("ext");
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &p(format!("{name}.key")),
            "-out",
            &p(format!("{name}.csr")),
            "-subj",
            &format!("/CN={}", sans[0]),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(format!("{name}.csr")),
            "-CA",
            &p("ca.pem".into()),
            "-CAkey",
            &p("ca.key".into()),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &p(format!("{name}.pem")),
            "-extfile",
            &ext,
        ]);
    }
}
