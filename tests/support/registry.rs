//! A real CNCF distribution 2.8 registry for tests: Debian's `docker-registry` binary started
//! on a free `127.0.0.1` port with deletion enabled and its storage in a temporary directory
//! (on `/dev/shm` when writable: the filesystem driver is ~3x faster there), optionally with
//! htpasswd (bcrypt) basic auth. The process is killed (by its PID) and the storage removed
//! when the [`TestRegistry`] is dropped, also when a test panics.
//!
//! The binary comes from the Debian package `docker-registry` (`apt-get install -y
//! docker-registry apache2-utils`); `start` panics with that hint when it is missing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary's path: `$DOCKER_REGISTRY_BIN` or `docker-registry` on `$PATH`.
pub fn binary() -> String {
    std::env::var("DOCKER_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".to_string())
}

/// Options of a test registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `(user, password)` to require with htpasswd basic auth.
    pub auth: Option<(String, String)>,
    /// Turn deletion off (`storage.delete.enabled: false`).
    pub deletes_disabled: bool,
    /// Refuse every write (`storage.maintenance.readonly.enabled: true`).
    pub read_only: bool,
    /// Serve HTTPS with a certificate for `127.0.0.1` signed by a fresh test CA (made with the
    /// `openssl` CLI); the CA's PEM is in [`TestRegistry::ca_pem`].
    pub tls: bool,
    /// Require bearer tokens from this realm URL (distribution's `auth.token`; the tokens'
    /// signing certificate is the test CA's, so no token it could be given verifies — enough to
    /// see what a client sends where it is challenged). Needs `tls`.
    pub token_realm: Option<String>,
}

/// A running `docker-registry serve`, stopped on drop.
pub struct TestRegistry {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port.
    pub port: u16,
    /// The credentials it requires, if any.
    pub auth: Option<(String, String)>,
    /// PEM of the CA that signed its certificate (TLS registries only).
    pub ca_pem: Option<Vec<u8>>,
    child: Child,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let b = tempfile::Builder::new()
        .prefix("oci-test-registry-")
        .tempdir_in(shm);
    match b {
        Ok(d) => d,
        Err(_) => tempfile::Builder::new()
            .prefix("oci-test-registry-")
            .tempdir()
            .expect("temp dir"),
    }
}

/// Status code of `GET /v2/` (raw HTTP/1.0 on a std socket, so it works outside a runtime).
fn probe(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().ok()?,
        Duration::from_millis(200),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl not runnable ({e})"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for `127.0.0.1` signed by it: (ca.crt, srv.crt, srv.key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n).display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    let (ca_key, ca_crt) = (p("ca.key"), p("ca.crt"));
    a.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca_crt,
        "-subj",
        "/CN=registry-operator test CA",
        "-days",
        "2",
    ]);
    openssl(&a);
    let (key, csr, crt, ext) = (p("srv.key"), p("srv.csr"), p("srv.crt"), p("srv.ext"));
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]);
    openssl(&a);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    (dir.join("ca.crt"), dir.join("srv.crt"), dir.join("srv.key"))
}

impl TestRegistry {
    /// Starts an anonymous registry with deletion enabled.
    pub fn start() -> TestRegistry {
        Self::start_with(RegistryOptions::default())
    }

    /// Starts a registry requiring `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> TestRegistry {
        Self::start_with(RegistryOptions {
            auth: Some((user.to_string(), password.to_string())),
            ..Default::default()
        })
    }

    /// Starts a registry with the given options; retries on another port if the chosen one
    /// was taken in the meantime.
    pub fn start_with(opts: RegistryOptions) -> TestRegistry {
        let mut last_log = String::new();
        for _ in 0..3 {
            match Self::try_start(&opts) {
                Ok(r) => return r,
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry did not come up; last log:\n{last_log}");
    }

    fn try_start(opts: &RegistryOptions) -> Result<TestRegistry, String> {
        let dir = temp_dir();
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let mut ca_pem = None;
        let mut tls = String::new();
        let mut ca_file = None;
        if opts.tls {
            let (ca, cert, key) = make_certs(dir.path());
            ca_file = Some(ca.clone());
            tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            ca_pem = Some(std::fs::read(ca).map_err(|e| e.to_string())?);
        }
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: {del}\n  \
             cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\n    readonly:\n      enabled: {ro}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: test-only-not-a-secret\n{tls}\
             health:\n  storagedriver:\n    enabled: false\n",
            data = data.display(),
            del = !opts.deletes_disabled,
            ro = opts.read_only,
        );
        if let Some((user, pass)) = &opts.auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", "-C", "5", user, pass])
                .output()
                .unwrap_or_else(|e| {
                    panic!("htpasswd not runnable ({e}); apt-get install -y apache2-utils")
                });
            assert!(out.status.success(), "htpasswd failed");
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, &out.stdout).map_err(|e| e.to_string())?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                path.display()
            ));
        }
        if let (Some(realm), Some(ca)) = (&opts.token_realm, &ca_file) {
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                ca.display()
            ));
        }
        let cfg_path: PathBuf = dir.path().join("config.yml");
        std::fs::write(&cfg_path, config).map_err(|e| e.to_string())?;
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(binary())
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); install it with apt-get install -y docker-registry",
                    binary()
                )
            });
        let scheme = if opts.tls { "https" } else { "http" };
        let mut reg = TestRegistry {
            url: format!("{scheme}://127.0.0.1:{port}"),
            port,
            auth: opts.auth.clone(),
            ca_pem,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = reg.child.try_wait() {
                break; // exited: port taken or bad config
            }
            if opts.tls {
                // the plain-HTTP probe cannot speak TLS: a listening port is enough
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(reg);
                }
            } else if let Some(200 | 401) = probe(port) {
                return Ok(reg);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        drop(reg);
        Err(log)
    }

    /// The storage directory (for tests that look at what the registry wrote).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // Only our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
