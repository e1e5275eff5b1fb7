//! `registry-operator dev seed`: fills a registry with small synthetic images — what the demo
//! and the retention benchmark run against, and a scratch registry to try a policy on: nested
//! repository names, several tags on one image, multi-arch indexes, and `created` times one
//! day apart (the last tag, `latest`, on the newest image). It only pushes (POST/PUT); it never
//! deletes.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use futures::stream::{self, StreamExt};
use sha2::{Digest as _, Sha256};

/// `dev` subcommands.
#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Push `--repos` × `--tags` small images into a registry.
    Seed(SeedArgs),
}

/// Arguments of `dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    #[command(subcommand)]
    pub command: DevCommand,
}

/// Arguments of `dev seed`.
#[derive(Args, Debug, Clone)]
pub struct SeedArgs {
    /// Registry base URL.
    #[arg(long, value_name = "URL")]
    pub registry: String,
    /// Number of repositories (`project-NN/service-M`, every tenth one level deeper).
    #[arg(long, default_value_t = 10)]
    pub repos: usize,
    /// Tags per repository (`v1.K.0` …, the last is `latest`).
    #[arg(long, default_value_t = 10)]
    pub tags: usize,
    /// Repositories pushed at the same time.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The name of the `i`th seeded repository.
pub fn repo_name(i: usize) -> String {
    let (g, j) = (i / 10, i % 10);
    if j == 9 {
        format!("project-{g:02}/team/service-{j}")
    } else {
        format!("project-{g:02}/service-{j}")
    }
}

/// Runs `dev`.
pub fn run(args: DevArgs) -> ExitCode {
    let DevCommand::Seed(args) = args.command;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    let start = Instant::now();
    match runtime.block_on(seed(&args)) {
        Ok(requests) => {
            println!(
                "seeded {} repositories x {} tags into {} ({requests} requests, {:.1}s)",
                args.repos,
                args.tags,
                args.registry,
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

struct Pusher {
    http: reqwest::Client,
    base: url::Url,
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

impl Pusher {
    fn url(&self, path: &str) -> Result<url::Url, String> {
        self.base.join(path).map_err(|e| e.to_string())
    }

    async fn blob(&self, repo: &str, bytes: &[u8]) -> Result<String, String> {
        let digest = sha256(bytes);
        let r = self
            .http
            .post(self.url(&format!("v2/{repo}/blobs/uploads/"))?)
            .header("content-length", "0")
            .send()
            .await
            .map_err(|e| format!("POST upload in {repo}: {e}"))?;
        if r.status().as_u16() != 202 {
            return Err(format!("POST upload in {repo}: {}", r.status()));
        }
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("POST upload in {repo}: no Location"))?
            .to_string();
        let mut put = self
            .url(&format!("v2/{repo}/blobs/uploads/"))?
            .join(&loc)
            .map_err(|e| e.to_string())?;
        put.query_pairs_mut().append_pair("digest", &digest);
        let r = self
            .http
            .put(put)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| format!("PUT blob in {repo}: {e}"))?;
        if r.status().as_u16() != 201 {
            return Err(format!("PUT blob in {repo}: {}", r.status()));
        }
        Ok(digest)
    }

    async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), String> {
        let r = self
            .http
            .put(self.url(&format!("v2/{repo}/manifests/{reference}"))?)
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| format!("PUT manifest {repo}:{reference}: {e}"))?;
        if r.status().as_u16() != 201 {
            return Err(format!("PUT manifest {repo}:{reference}: {}", r.status()));
        }
        Ok(())
    }

    /// An image: config (with `created`) + the shared layer; PUT by digest. 3 requests.
    async fn image(
        &self,
        repo: &str,
        ident: &str,
        created: &str,
        arch: &str,
        layer: &(String, usize),
    ) -> Result<Vec<u8>, String> {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux", "created": created,
            "config": {"Labels": {"dev.seed": ident}},
            "rootfs": {"type": "layers", "diff_ids": [layer.0]},
        }))
        .map_err(|e| e.to_string())?;
        let config_digest = self.blob(repo, &config).await?;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.0, "size": layer.1}],
        }))
        .map_err(|e| e.to_string())?;
        self.manifest(repo, &sha256(&manifest), &manifest, OCI_MANIFEST)
            .await?;
        Ok(manifest)
    }
}

/// Seeds the registry; returns the number of requests made.
async fn seed(args: &SeedArgs) -> Result<u64, String> {
    let mut base = url::Url::parse(&args.registry).map_err(|e| format!("--registry: {e}"))?;
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    crate::tls::install_crypto_provider();
    let pusher = Pusher {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| e.to_string())?,
        base,
    };
    let now = jiff::Timestamp::now();
    let tags = args.tags;
    let results: Vec<Result<u64, String>> = stream::iter(0..args.repos)
        .map(|i| {
            let pusher = &pusher;
            async move {
                let repo = repo_name(i);
                let layer_bytes = format!("layer of {repo}").into_bytes();
                let layer = (pusher.blob(&repo, &layer_bytes).await?, layer_bytes.len());
                let mut requests = 2u64;
                let mut previous: Option<(Vec<u8>, &str)> = None;
                for k in 0..tags {
                    let last = k + 1 == tags && tags > 1;
                    let tag = if last {
                        "latest".to_string()
                    } else {
                        format!("v1.{k}.0")
                    };
                    let alias = last || (k > 0 && k % 5 == 0);
                    // one day apart, the newest a day old
                    let age = jiff::SignedDuration::from_hours(24 * (tags - k) as i64);
                    let created = now.checked_sub(age).map_err(|e| e.to_string())?.to_string();
                    if let (true, Some((bytes, mt))) = (alias, &previous) {
                        pusher.manifest(&repo, &tag, bytes, mt).await?;
                        requests += 1;
                        continue;
                    }
                    let ident = format!("{repo}:{k}");
                    if k == 3 && i % 5 != 4 {
                        let mut children = Vec::new();
                        for arch in ["amd64", "arm64"] {
                            let m = pusher.image(&repo, &ident, &created, arch, &layer).await?;
                            children.push(serde_json::json!({
                                "mediaType": OCI_MANIFEST, "digest": sha256(&m), "size": m.len(),
                                "platform": {"architecture": arch, "os": "linux"},
                            }));
                        }
                        let index = serde_json::to_vec(&serde_json::json!({
                            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children,
                            "annotations": {"org.opencontainers.image.created": created},
                        }))
                        .map_err(|e| e.to_string())?;
                        pusher.manifest(&repo, &tag, &index, OCI_INDEX).await?;
                        requests += 7;
                        previous = Some((index, OCI_INDEX));
                    } else {
                        let m = pusher
                            .image(&repo, &ident, &created, "amd64", &layer)
                            .await?;
                        pusher.manifest(&repo, &tag, &m, OCI_MANIFEST).await?;
                        requests += 4;
                        previous = Some((m, OCI_MANIFEST));
                    }
                }
                Ok(requests)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    results.into_iter().sum()
}
