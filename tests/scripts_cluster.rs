//! scripts/cluster.sh fails clearly and leaves nothing running: without Go, when a module
//! cannot be had from the Go proxy, when a port it is told to use is taken, when a component
//! dies at start; and start, pause, resume, restart-apiserver and stop do what they say.
//! Uses the binaries scripts/test.sh built (the same cache).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> Command {
    Command::new(root().join("scripts/cluster.sh"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            out.push(format!("{name}: {cmdline}"));
        }
    }
    out
}

fn fresh_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    (tmp, dir)
}

#[test]
fn without_go_start_fails_saying_go_is_needed() {
    let (_tmp, dir) = fresh_dir();
    // Everything the script needs but Go.
    let bin = tempfile::tempdir().unwrap();
    for tool in [
        "bash",
        "env",
        "dirname",
        "cat",
        "awk",
        "sha256sum",
        "cut",
        "mkdir",
        "ls",
        "rm",
    ] {
        if let Ok(path) = which(tool) {
            std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
        }
    }
    let out = script()
        .args(["start", dir.to_str().unwrap()])
        .env("PATH", bin.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Go is not installed"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.exists(), "nothing is left behind");
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(tool))
        .find(|p| p.exists())
        .ok_or(())
}

#[test]
fn a_module_the_proxy_does_not_serve_fails_the_build_naming_it() {
    // An empty module cache and a proxy that serves nothing: the first module go needs is
    // missing, as when the Go proxy does not serve a pinned version.
    let tmp = tempfile::tempdir().unwrap();
    let proxy = tmp.path().join("proxy");
    std::fs::create_dir_all(&proxy).unwrap();
    let out = script()
        .arg("build")
        .env("REGISTRY_OPERATOR_CLUSTER_CACHE", tmp.path().join("bins"))
        .env("GOMODCACHE", tmp.path().join("mod"))
        .env("GOCACHE", tmp.path().join("build"))
        .env("GOPROXY", format!("file://{}", proxy.display()))
        .env("GOFLAGS", "")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("k8s.io/") && err.contains("building kube-apiserver"),
        "the go error names the module and the script names the build: {err}"
    );
    assert!(
        !tmp.path()
            .join("bins")
            .read_dir()
            .unwrap()
            .flatten()
            .any(|d| d.path().join("bin").exists()),
        "no binaries are cached"
    );
}

#[test]
fn a_taken_port_fails_start_naming_it_and_starts_nothing() {
    let (_tmp, dir) = fresh_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = script()
        .args(["start", dir.to_str().unwrap()])
        .env("CLUSTER_APISERVER_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "port 127.0.0.1:{port} (CLUSTER_APISERVER_PORT) is taken"
        )),
        "{}",
        stderr(&out)
    );
    assert!(!dir.exists(), "nothing is left behind");
    assert_eq!(
        processes_mentioning(dir.to_str().unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn an_api_server_that_dies_at_start_is_named_and_etcd_is_stopped() {
    let (_tmp, dir) = fresh_dir();
    let out = script()
        .args(["start", dir.to_str().unwrap()])
        .env("CLUSTER_APISERVER_EXTRA_ARGS", "--no-such-flag")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("kube-apiserver exited at start (exit status 1)"),
        "{err}"
    );
    assert!(err.contains("no-such-flag"), "its log is shown: {err}");
    assert!(err.contains("nothing left running"), "{err}");
    assert_eq!(
        processes_mentioning(dir.to_str().unwrap()),
        Vec::<String>::new(),
        "etcd, started first, was stopped"
    );
    assert!(!dir.exists());
}

/// Whether the API server of the control plane in `dir` answers `/readyz` within 3 s.
fn ready(dir: &Path) -> bool {
    let env = std::fs::read_to_string(dir.join("ports.env")).unwrap();
    let port = env
        .lines()
        .find_map(|l| l.strip_prefix("APISERVER_PORT="))
        .unwrap();
    let certs = dir.join("certs");
    Command::new("curl")
        .args(["-sf", "--max-time", "3", "--cacert"])
        .arg(certs.join("ca.crt"))
        .arg("--cert")
        .arg(certs.join("admin.crt"))
        .arg("--key")
        .arg(certs.join("admin.key"))
        .arg(format!("https://127.0.0.1:{port}/readyz"))
        .output()
        .unwrap()
        .status
        .success()
}

fn run_ok(args: &[&str]) {
    let out = script().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

#[test]
fn start_then_stop_ends_every_process_and_removes_the_state() {
    let (_tmp, dir) = fresh_dir();
    let out = script()
        .args(["start", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("kubeconfig").exists());
    let running = processes_mentioning(dir.to_str().unwrap());
    assert_eq!(
        running.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager: {running:#?}"
    );
    // Starting again is a no-op that says so.
    let again = script()
        .args(["start", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );

    // Faults for later tests: a paused API server does not answer, a resumed one does, a
    // restarted one is a new process on the same port.
    let d = dir.to_str().unwrap();
    assert!(ready(&dir));
    run_ok(&["pause", d]);
    assert!(!ready(&dir), "a paused API server answers");
    run_ok(&["resume", d]);
    assert!(ready(&dir), "a resumed API server does not answer");
    let pid = std::fs::read_to_string(dir.join("kube-apiserver.pid")).unwrap();
    run_ok(&["restart-apiserver", d]);
    assert_ne!(
        std::fs::read_to_string(dir.join("kube-apiserver.pid")).unwrap(),
        pid,
        "a new API server process"
    );
    assert!(ready(&dir), "the restarted API server answers");
    assert_eq!(processes_mentioning(d).len(), 3);
    let out = script()
        .args(["stop", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        processes_mentioning(dir.to_str().unwrap()),
        Vec::<String>::new()
    );
    assert!(!dir.exists(), "the state is removed");
}
