//! One private `redis-server` per test, in its own temporary directory.
//! A static one would never be dropped, leaving the server running after
//! the test binary exits; this one stops when the value is dropped. Also
//! one with a TLS port and certificates made for it ([`TlsTestServer`]).

use crate::connection::TlsFiles;
use crate::LocalRedis;
use std::path::{Path, PathBuf};
use std::process::Command;
pub use tempfile::TempDir;

pub struct TestServer {
    pub server: LocalRedis,
    /// Holds the server's files; removed after the server stops.
    pub dir: TempDir,
}

impl TestServer {
    /// Panics when no server can be started: a test cannot go on without it.
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        let server = LocalRedis::start(dir.path()).expect("a private redis-server");
        TestServer { server, dir }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// A private `redis-server` with a TLS port beside its plain one (the
/// plain one for the readiness check and the stop), its certificates
/// issued at start by a CA made for it with the `openssl` command line.
pub struct TlsTestServer {
    pub server: LocalRedis,
    pub tls_port: u16,
    /// Holds the certificates and the server's files.
    pub dir: TempDir,
}

impl TlsTestServer {
    /// A server for `rediss://localhost` and `rediss://127.0.0.1`, with
    /// `extra` `redis-server` arguments (`--tls-auth-clients yes`, ACL
    /// users); client certificates are not required unless `extra` says so.
    /// Panics when openssl or the server fail: a test cannot go on.
    pub fn start(extra: &[&str]) -> TlsTestServer {
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        let path = dir.path();
        openssl(
            path,
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1",
            Some("/CN=stratbox test CA"),
        );
        let san = "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
        issue(path, "server", "/CN=localhost", san);
        let tls_port = crate::local::free_port().expect("a free port");
        let file = |name: &str| path.join(name).display().to_string();
        let (port, cert, key, ca) = (
            tls_port.to_string(),
            file("server.pem"),
            file("server.key"),
            file("ca.pem"),
        );
        let mut args = vec![
            "--tls-port",
            &port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        args.extend_from_slice(extra);
        let server = LocalRedis::start_with_args(&path.join("data"), &args)
            .expect("a private redis-server with TLS");
        TlsTestServer {
            server,
            tls_port,
            dir,
        }
    }

    /// `rediss://localhost:<tls port>/`.
    pub fn url(&self) -> String {
        format!("rediss://localhost:{}/", self.tls_port)
    }

    /// The CA that signed the server's certificate, and no client certificate.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca_cert: Some(self.dir.path().join("ca.pem")),
            client_cert: None,
        }
    }

    /// A client certificate and key signed by the same CA.
    pub fn client_certificate(&self) -> (PathBuf, PathBuf) {
        let path = self.dir.path();
        issue(
            path,
            "client",
            "/CN=stratbox worker",
            "extendedKeyUsage=clientAuth\n",
        );
        (path.join("client.pem"), path.join("client.key"))
    }
}

/// `openssl` with `args` (split at spaces) and then `subject`, if any, in `dir`.
fn openssl(dir: &Path, args: &str, subject: Option<&str>) {
    let mut command = Command::new("openssl");
    command.args(args.split_whitespace()).current_dir(dir);
    if let Some(subject) = subject {
        command.args(["-subj", subject]);
    }
    let out = command
        .output()
        .expect("the openssl command line (Debian package `openssl`)");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate of `name` (`name.key`, `name.pem`) in `dir`,
/// signed by the CA there with the extensions given; X.509 v3 (webpki
/// takes no other).
fn issue(dir: &Path, name: &str, subject: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("writing the extensions");
    openssl(
        dir,
        &format!("req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr"),
        Some(subject),
    );
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
             -out {name}.pem -days 1 -extfile {name}.ext"
        ),
        None,
    );
}
