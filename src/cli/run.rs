//! `registry-operator run`: the operator itself.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;

use crate::controller::context::{parse_cluster_domain, Settings, DEFAULT_CLUSTER_DOMAIN};
use crate::controller::lockdown::{ImagePattern, Lockdown, SecretLabel};
use crate::controller::operator::{self, OperatorConfig};
use crate::controller::runtime::{init_tracing, LeaderElection, LogFormat};

/// Arguments of `registry-operator run`. Uses in-cluster config, or `KUBECONFIG`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        default_value = "0.0.0.0:8080",
        env = "REGISTRY_OPERATOR_HTTP_LISTEN"
    )]
    pub http_listen: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `info,registry_operator=debug` (RUST_LOG overrides).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Compete for a Lease so only one replica reconciles.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "registry-operator")]
    pub leader_election_lease: String,
    /// Seconds the leader-election Lease holds without a renewal: a replica that stops
    /// renewing (killed, cut off) is replaced this long after its last renewal. The leader
    /// renews a third of it before it runs out, and before deleting anything reads the Lease
    /// afresh, giving up (deleting nothing) after a third of it without an answer.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub leader_election_lease_duration_seconds: u64,
    /// Identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Watch only these namespaces (repeatable); default: the whole cluster.
    #[arg(long = "watch-namespace")]
    pub watch_namespaces: Vec<String>,
    /// Seconds between health checks of each Registry.
    #[arg(long, default_value_t = 60)]
    pub health_interval_seconds: u64,
    /// The cluster's DNS domain: managed registries are reached at
    /// `<name>.<namespace>.svc.<domain>`.
    #[arg(long, env = "CLUSTER_DOMAIN", default_value = DEFAULT_CLUSTER_DOMAIN, value_parser = parse_cluster_domain)]
    pub cluster_domain: String,
    /// Whether registries on loopback addresses (127.0.0.0/8, ::1) may be contacted. True for
    /// the binary run by hand (tests, the demo, a laptop reach 127.0.0.1); in a cluster set it
    /// false: loopback there is the operator's own pod. Cloud metadata, link-local and
    /// unspecified addresses are refused whatever this says.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_loopback_registries: bool,
    /// Whether an external Registry's URL may name a Service of another namespace
    /// (`<svc>.<ns>.svc[.<cluster-domain>]`, `<svc>.<ns>`): by default another team's
    /// Services are refused.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_cross_namespace_services: bool,
    /// Lockdown: an image a managed Registry may run (repeatable). `host/path` allows that
    /// repository with any tag, `host/path/` every repository below it, `host/path:tag` or
    /// `host/path@sha256:…` only that tag or digest; `*`, `**`, `?` are globs. Unset: any image.
    /// Any other `spec.image` is refused (`ImageNotAllowed`) and nothing is applied.
    #[arg(long = "allowed-image", value_name = "PATTERN", value_parser = ImagePattern::parse)]
    pub allowed_images: Vec<ImagePattern>,
    /// Lockdown: honour `spec.external.insecureSkipTlsVerify: true`; without it such a
    /// Registry is refused (`InsecureTLSNotAllowed`).
    #[arg(long)]
    pub allow_insecure_skip_tls_verify: bool,
    /// Lockdown: let the operator send a Registry's credentials over plain http to a host
    /// outside the cluster (loopback addresses and `<service>.<namespace>.svc` names are
    /// inside); without it such a Registry is refused (`PlainHTTPCredentialsNotAllowed`).
    #[arg(long)]
    pub allow_plain_http_credentials: bool,
    /// Lockdown: every Secret a Registry names must carry this label (`KEY` with any value, or
    /// `KEY=VALUE`); otherwise the Registry is refused (`SecretNotAllowed`) and the Secret is
    /// not read. Unset: any Secret of the Registry's namespace.
    #[arg(long, value_name = "KEY[=VALUE]", value_parser = SecretLabel::parse)]
    pub secret_label: Option<SecretLabel>,
}

impl RunArgs {
    /// The reconcilers' settings these flags ask for.
    pub fn settings(&self) -> Settings {
        let defaults = Settings::default();
        Settings {
            registry_client: crate::oci::ClientOptions {
                address_policy: crate::oci::AddressPolicy {
                    allow_loopback: self.allow_loopback_registries,
                },
                ..defaults.registry_client.clone()
            },
            allow_cross_namespace_services: self.allow_cross_namespace_services,
            health_interval: std::time::Duration::from_secs(self.health_interval_seconds.max(5)),
            cluster_domain: self.cluster_domain.clone(),
            leader_lease_duration: std::time::Duration::from_secs(
                self.leader_election_lease_duration_seconds,
            ),
            lockdown: Lockdown {
                allowed_images: self.allowed_images.clone(),
                allow_insecure_skip_tls_verify: self.allow_insecure_skip_tls_verify,
                allow_plain_http_credentials: self.allow_plain_http_credentials,
                secret_label: self.secret_label.clone(),
            },
            ..defaults
        }
    }
}

/// Runs the operator until SIGTERM.
pub fn run(args: RunArgs) -> ExitCode {
    init_tracing(args.log_format, &args.log_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    runtime.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no Kubernetes configuration (in-cluster or KUBECONFIG)");
                return ExitCode::from(super::EXIT_FAILURE);
            }
        };
        let leader_election = if args.leader_elect {
            let identity = args.identity.clone().unwrap_or_else(|| format!("registry-operator-{}", std::process::id()));
            Some(LeaderElection {
                namespace: args.leader_election_namespace.clone().unwrap_or_else(|| "default".into()),
                lease: args.leader_election_lease.clone(),
                identity,
            })
        } else {
            None
        };
        let settings = args.settings();
        let config = OperatorConfig { http_listen: args.http_listen, leader_election, watch_namespaces: args.watch_namespaces, settings };
        let (shutdown, _tx) = operator::shutdown_signal();
        match operator::run(client, config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(reason = e.reason(), error = %e, "operator stopped");
                ExitCode::from(super::EXIT_FAILURE)
            }
        }
    })
}
