//! What the control-plane fault tests need beyond [`cluster`](super::cluster):
//!
//! - [`ControlPlane`]: a control plane of one test's own (`scripts/cluster.sh start` in a
//!   temporary directory, stopped on drop, also when the test panics), so that pausing or
//!   restarting its API server freezes no other test;
//! - [`OperatorProcess`]: the operator as a process — `registry-operator run`, the binary cargo
//!   builds for the integration tests — with the chart's ServiceAccount token in its kubeconfig.
//!   A process, not a task: losing the Lease ends the process, killing it is the fault, and a
//!   task cannot be killed without its lease manager living on in the test's runtime.
//!
//! ```ignore
//! let cp = ControlPlane::start("pause").await;                 // seconds: the binaries are cached
//! cp.cluster.install_crds().await;
//! let ns = cp.cluster.namespace("pause").await;
//! let sa = cp.cluster.operator_identity(&ns).await;
//! let mut op = OperatorProcess::start(&sa, &ns, Some("replica-a"), 6);
//! op.wait_ready().await;
//! cp.pause().await;                                             // SIGSTOP the API server
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cluster::{root, Cluster, Identity};

/// A control plane of one test's own, stopped (every process by its PID) and removed on drop.
pub struct ControlPlane {
    /// An admin connection to it.
    pub cluster: Cluster,
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

/// Runs `scripts/cluster.sh ARGS…` to the end (off the async runtime's threads); panics with
/// its output when it fails.
async fn cluster_script(args: Vec<String>) {
    let shown = args.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(root().join("scripts/cluster.sh"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .expect("the script's thread")
    .unwrap_or_else(|e| panic!("scripts/cluster.sh {shown} cannot run: {e}"));
    assert!(
        out.status.success(),
        "scripts/cluster.sh {shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager in a new temporary directory
    /// (`scripts/cluster.sh start`; needs Go and, to be quick, the cached binaries).
    pub async fn start(name: &str) -> ControlPlane {
        let parent = tempfile::Builder::new()
            .prefix(&format!("registry-operator-{name}-"))
            .tempdir()
            .expect("a temporary directory");
        let dir = parent.path().join("cluster");
        cluster_script(vec!["start".into(), dir.display().to_string()]).await;
        let cluster = Cluster::connect_to(&dir.join("kubeconfig")).await;
        ControlPlane {
            cluster,
            dir,
            _parent: parent,
        }
    }

    async fn script(&self, command: &str) {
        cluster_script(vec![command.into(), self.dir.display().to_string()]).await;
    }

    /// Stops the API server with SIGSTOP: its port still accepts connections, nothing is
    /// answered.
    pub async fn pause(&self) {
        self.script("pause").await;
    }

    /// Lets the paused API server go on (SIGCONT).
    pub async fn resume(&self) {
        self.script("resume").await;
    }

    /// Stops the API server (SIGTERM) and starts it again with the same flags; returns once it
    /// is ready again.
    pub async fn restart_apiserver(&self) {
        self.script("restart-apiserver").await;
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // `stop` resumes a paused API server before stopping it, and stops only what the
        // script started in this directory, by PID.
        let _ = Command::new(root().join("scripts/cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The operator binary cargo built for the integration tests.
pub fn operator_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_registry-operator") {
        Some(p) => PathBuf::from(p),
        None => panic!("the operator binary is only known to integration tests (tests/*.rs)"),
    }
}

/// `registry-operator run` as the chart's ServiceAccount, limited to one namespace; killed (by
/// its PID) on drop.
pub struct OperatorProcess {
    /// Its identity in the leader-election Lease, if it takes part in leader election.
    pub replica: Option<String>,
    /// `system:serviceaccount:<namespace>:<name>`, the user in the audit log.
    pub username: String,
    /// `http://127.0.0.1:PORT` of its `/metrics`, `/healthz` and `/readyz`.
    pub http_url: String,
    child: Child,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl OperatorProcess {
    /// Starts `registry-operator run --watch-namespace NAMESPACE` with `identity`'s kubeconfig
    /// and text logs; with `replica`, with leader election on the Lease `registry-operator` in
    /// `namespace` (where the chart's Role grants it), held `lease_seconds` without renewal.
    pub fn start(
        identity: &Identity,
        namespace: &str,
        replica: Option<&str>,
        lease_seconds: u64,
    ) -> OperatorProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log_dir = tempfile::Builder::new()
            .prefix("registry-operator-log-")
            .tempdir()
            .expect("a temporary directory");
        let log = log_dir.path().join("operator.log");
        let file = std::fs::File::create(&log).expect("the operator's log file");
        let mut cmd = Command::new(operator_binary());
        cmd.arg("run")
            .arg(format!("--http-listen=127.0.0.1:{port}"))
            .args(["--log-format=text", "--log-level=info"])
            .arg(format!("--watch-namespace={namespace}"))
            .arg("--health-interval-seconds=5");
        if let Some(replica) = replica {
            cmd.arg("--leader-elect")
                .arg(format!("--leader-election-namespace={namespace}"))
                .arg("--leader-election-lease=registry-operator")
                .arg(format!("--identity={replica}"))
                .arg(format!(
                    "--leader-election-lease-duration-seconds={lease_seconds}"
                ));
        }
        let child = cmd
            .env("KUBECONFIG", &identity.kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("the log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", operator_binary().display()));
        OperatorProcess {
            replica: replica.map(str::to_string),
            username: identity.username.clone(),
            http_url: format!("http://127.0.0.1:{port}"),
            child,
            log,
            _log_dir: log_dir,
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running (not exited, not restarted: the same process).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits (at most 60 s) until it answers `/readyz`; panics with its log if it exits first.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/readyz", self.http_url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the operator exited at start ({status}):\n{}",
                    self.log_tail(30)
                );
            }
            if let Ok(r) = reqwest::get(&url).await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not answer /readyz within 60 s:\n{}",
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one series of its `/metrics`, named with its labels exactly as exported;
    /// None when the series does not exist (yet) or the operator does not answer.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics_text().await?;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The sum of the series of the metric `name` whose labels contain `with` (`""`: every
    /// series), e.g. `outcome="Succeeded"`; 0 when there is none.
    pub async fn metric_sum(&self, name: &str, with: &str) -> f64 {
        let text = self.metrics_text().await.unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                    && l.contains(with)
            })
            .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
            .sum()
    }

    async fn metrics_text(&self) -> Option<String> {
        let r = reqwest::get(format!("{}/metrics", self.http_url))
            .await
            .ok()?;
        r.text().await.ok()
    }

    /// Kills it with SIGKILL — no clean shutdown, the Lease is not released — and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGTERM and waits (at most 10 s, then SIGKILL); panics if it had exited
    /// before (it was meant to be running) or stops with a failure.
    pub fn stop(mut self) {
        assert!(
            self.running(),
            "the operator had exited:\n{}",
            self.log_tail(30)
        );
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "the operator stopped with {status}:\n{}",
                    self.log_tail(30)
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        panic!("the operator did not stop within 10 s of SIGTERM");
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The operator's requests the API server refused for want of a grant (403), as `verb URI`.
pub fn forbidden(cluster: &Cluster, username: &str) -> Vec<String> {
    cluster
        .audit_events(username)
        .into_iter()
        .filter(|e| e.code == 403)
        .map(|e| format!("{} {}", e.verb, e.uri))
        .collect()
}
