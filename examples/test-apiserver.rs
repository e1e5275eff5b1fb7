//! Runs the in-process Kubernetes API test double (`crates/kube-double`) as a standalone server,
//! so the operator and `kubectl` can be tried on a machine without a cluster:
//!
//! ```text
//! cargo run --release --example test-apiserver -- --listen 127.0.0.1:6443 --kubeconfig /tmp/kubeconfig
//! kubectl --kubeconfig /tmp/kubeconfig apply -f crds/
//! ```
//!
//! The kubeconfig is written once the server is listening. State lives in memory only.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Command line of the test API server.
#[derive(Parser, Debug)]
#[command(about = "In-memory Kubernetes API server test double (not a real cluster)")]
struct Args {
    /// Address to listen on (loopback only is sensible; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How many changes watches can resume from before they get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let server = kube_double::TestApiServer::start_with(kube_double::Options {
        listen: args.listen,
        watch_history: args.watch_history,
        ..Default::default()
    })
    .await?;
    if let Some(path) = &args.kubeconfig {
        server.write_kubeconfig(path)?;
        eprintln!("kubeconfig written to {}", path.display());
    }
    eprintln!("test API server listening on {}", server.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
