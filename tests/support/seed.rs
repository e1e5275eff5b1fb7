//! Seeds a registry through the Distribution API (plain reqwest, independent of the client
//! under test): small OCI images (a config with `created`, one layer), image indexes with
//! per-platform children, aliased tags (several tags on one digest), referrers with a
//! `subject`, the referrers tag schema, nested repository names, and whole fleets of
//! repositories for pagination tests and benchmarks.
//!
//! Blobs are uploaded with POST + PUT `?digest=` (distribution 2.8 has no single-request
//! upload); manifests are PUT by digest and then by tag.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker image manifest (schema 2) media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The empty config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// `sha256:<hex>` of `b`.
pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A manifest that was pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The config blob digest (images and artifacts).
    pub config_digest: Option<String>,
    /// Children (indexes).
    pub children: Vec<Pushed>,
}

impl Pushed {
    /// Size of the manifest bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// What [`Seeder::seed_fleet`] pushed: repository → tag → digest.
pub type Fleet = BTreeMap<String, BTreeMap<String, String>>;

/// Pushes content into a registry.
#[derive(Clone)]
pub struct Seeder {
    http: reqwest::Client,
    base: Arc<url::Url>,
    auth: Option<(String, String)>,
}

impl Seeder {
    /// A seeder for the registry at `url`, with optional basic credentials.
    pub fn new(url: &str, auth: Option<(String, String)>) -> Seeder {
        registry_operator::tls::install_crypto_provider();
        Seeder {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(32)
                .build()
                .expect("reqwest client"),
            base: Arc::new(url::Url::parse(url).expect("registry url")),
            auth,
        }
    }

    fn req(&self, method: reqwest::Method, url: url::Url) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.auth {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        }
    }

    fn url(&self, path: &str) -> url::Url {
        self.base.join(path).expect("url")
    }

    /// Uploads a blob (POST + PUT) and returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let r = self
            .req(
                reqwest::Method::POST,
                self.url(&format!("v2/{repo}/blobs/uploads/")),
            )
            .header("content-length", "0")
            .send()
            .await
            .expect("POST upload");
        assert_eq!(r.status().as_u16(), 202, "POST upload in {repo}");
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload Location")
            .to_string();
        let mut put = self
            .url(&format!("v2/{repo}/blobs/uploads/"))
            .join(&loc)
            .expect("location url");
        put.query_pairs_mut().append_pair("digest", &digest);
        let r = self
            .req(reqwest::Method::PUT, put)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("PUT blob");
        assert_eq!(r.status().as_u16(), 201, "PUT blob in {repo}");
        digest
    }

    /// PUTs manifest bytes under `reference` (tag or digest) and returns the digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> String {
        let r = self
            .req(
                reqwest::Method::PUT,
                self.url(&format!("v2/{repo}/manifests/{reference}")),
            )
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("PUT manifest");
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 201, "PUT manifest {repo}:{reference}: {body}");
        sha256(bytes)
    }

    /// Tags an already pushed manifest.
    pub async fn tag(&self, repo: &str, tag: &str, m: &Pushed) {
        self.put_manifest(repo, tag, &m.bytes, m.media_type).await;
    }

    /// Pushes an image (config with `created` and a label `ident`, one layer) by digest, and
    /// under `tag` when given. `layer` lets callers share one layer blob across images.
    pub async fn push_image_with(
        &self,
        repo: &str,
        tag: Option<&str>,
        ident: &str,
        created: &str,
        arch: &str,
        layer: Option<(&str, u64)>,
    ) -> Pushed {
        let (layer_digest, layer_size) = match layer {
            Some((d, s)) => (d.to_string(), s),
            None => {
                let bytes = format!("layer of {repo} {ident} {arch}").into_bytes();
                (self.push_blob(repo, &bytes).await, bytes.len() as u64)
            }
        };
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux", "created": created,
            "config": {"Labels": {"test.ident": ident, "test.repo": repo}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))
        .expect("json");
        let config_digest = self.push_blob(repo, &config).await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
        }))
        .expect("json");
        let digest = sha256(&manifest);
        self.put_manifest(repo, &digest, &manifest, OCI_MANIFEST)
            .await;
        let pushed = Pushed {
            digest,
            media_type: OCI_MANIFEST,
            bytes: manifest,
            config_digest: Some(config_digest),
            children: Vec::new(),
        };
        if let Some(t) = tag {
            self.tag(repo, t, &pushed).await;
        }
        pushed
    }

    /// [`push_image_with`](Self::push_image_with) for linux/amd64 and a fresh layer.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        ident: &str,
        created: &str,
    ) -> Pushed {
        self.push_image_with(repo, tag, ident, created, "amd64", None)
            .await
    }

    /// Pushes a Docker schema 2 image (Docker media types throughout) by digest and under
    /// `tag` when given.
    pub async fn push_docker_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        ident: &str,
        created: &str,
        arch: &str,
    ) -> Pushed {
        let layer = format!("docker layer of {repo} {ident} {arch}").into_bytes();
        let ld = self.push_blob(repo, &layer).await;
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux", "created": created,
            "rootfs": {"type": "layers", "diff_ids": [ld]},
        }))
        .expect("json");
        let cd = self.push_blob(repo, &config).await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": cd, "size": config.len()},
            "layers": [{"mediaType": DOCKER_LAYER, "digest": ld, "size": layer.len()}],
        }))
        .expect("json");
        let digest = sha256(&manifest);
        self.put_manifest(repo, &digest, &manifest, DOCKER_MANIFEST)
            .await;
        let pushed = Pushed {
            digest,
            media_type: DOCKER_MANIFEST,
            bytes: manifest,
            config_digest: Some(cd),
            children: Vec::new(),
        };
        if let Some(t) = tag {
            self.tag(repo, t, &pushed).await;
        }
        pushed
    }

    /// Pushes a Docker manifest list of two Docker images (amd64, arm64) under `tag`.
    pub async fn push_docker_list(
        &self,
        repo: &str,
        tag: &str,
        ident: &str,
        created: &str,
    ) -> Pushed {
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            children.push(
                self.push_docker_image(repo, None, ident, created, arch)
                    .await,
            );
        }
        let manifests: Vec<_> = children
            .iter()
            .zip(["amd64", "arm64"])
            .map(|(c, arch)| serde_json::json!({"mediaType": DOCKER_MANIFEST, "digest": c.digest, "size": c.size(), "platform": {"architecture": arch, "os": "linux"}}))
            .collect();
        let list = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": manifests}))
            .expect("json");
        let digest = self.put_manifest(repo, tag, &list, DOCKER_LIST).await;
        Pushed {
            digest,
            media_type: DOCKER_LIST,
            bytes: list,
            config_digest: None,
            children,
        }
    }

    /// Pushes a multi-arch image index (linux/amd64 and linux/arm64 children, pushed by digest
    /// and untagged) under `tag`, with an `org.opencontainers.image.created` annotation.
    pub async fn push_index(&self, repo: &str, tag: &str, ident: &str, created: &str) -> Pushed {
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            children.push(
                self.push_image_with(repo, None, ident, created, arch, None)
                    .await,
            );
        }
        let manifests: Vec<_> = children
            .iter()
            .zip(["amd64", "arm64"])
            .map(|(c, arch)| {
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": c.digest, "size": c.size(),
                    "platform": {"architecture": arch, "os": "linux"}})
            })
            .collect();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
            "annotations": {"org.opencontainers.image.created": created},
        }))
        .expect("json");
        let digest = self.put_manifest(repo, tag, &index, OCI_INDEX).await;
        Pushed {
            digest,
            media_type: OCI_INDEX,
            bytes: index,
            config_digest: None,
            children,
        }
    }

    /// Pushes an artifact (empty config, one small layer) whose `subject` is `subject`, by
    /// digest only, as a signature or SBOM would be.
    pub async fn push_referrer(
        &self,
        repo: &str,
        subject: &Pushed,
        artifact_type: &str,
        ident: &str,
    ) -> Pushed {
        let empty = b"{}".to_vec();
        let empty_digest = self.push_blob(repo, &empty).await;
        let payload = format!("payload {ident}").into_bytes();
        let payload_digest = self.push_blob(repo, &payload).await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty_digest, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": payload_digest, "size": payload.len()}],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size()},
            "annotations": {"test.ident": ident},
        }))
        .expect("json");
        let digest = sha256(&manifest);
        self.put_manifest(repo, &digest, &manifest, OCI_MANIFEST)
            .await;
        Pushed {
            digest,
            media_type: OCI_MANIFEST,
            bytes: manifest,
            config_digest: Some(empty_digest),
            children: Vec::new(),
        }
    }

    /// Writes the referrers tag schema's index (`sha256-<hex>` tag) listing `referrers` of
    /// `subject`, as OCI 1.1 clients do on registries without the referrers API.
    pub async fn push_referrers_tag(
        &self,
        repo: &str,
        subject: &Pushed,
        referrers: &[(&Pushed, &str)],
    ) -> String {
        let manifests: Vec<_> = referrers
            .iter()
            .map(|(r, at)| serde_json::json!({"mediaType": r.media_type, "digest": r.digest, "size": r.size(), "artifactType": at}))
            .collect();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
        }))
        .expect("json");
        let tag = subject.digest.replacen(':', "-", 1);
        self.put_manifest(repo, &tag, &index, OCI_INDEX).await
    }

    /// Seeds `repos` repositories × `tags` tags with `concurrency` repositories at a time.
    /// Names are nested (`project-NN/service-M`, `project-NN/team/service-M`); each
    /// repository shares one layer; every 5th tag aliases the previous tag's image; the last
    /// tag is `latest` on the newest image. `created` runs from oldest (first tag) to newest.
    pub async fn seed_fleet(&self, repos: usize, tags: usize, concurrency: usize) -> Fleet {
        use futures::stream::{self, StreamExt};
        let results: Vec<(String, BTreeMap<String, String>)> = stream::iter(0..repos)
            .map(|i| {
                let s = self.clone();
                async move {
                    let repo = fleet_repo_name(i);
                    let layer = format!("shared layer of {repo}").into_bytes();
                    let ld = s.push_blob(&repo, &layer).await;
                    let mut map = BTreeMap::new();
                    let mut prev: Option<Pushed> = None;
                    for k in 0..tags {
                        let last = k + 1 == tags && tags > 1;
                        let tag = if last {
                            "latest".to_string()
                        } else {
                            format!("v1.{k}.0")
                        };
                        let alias = last || (k > 0 && k % 5 == 0);
                        let img = match (&prev, alias) {
                            (Some(p), true) => {
                                s.tag(&repo, &tag, p).await;
                                p.clone()
                            }
                            _ => {
                                let created =
                                    format!("2026-01-{:02}T00:00:{:02}Z", 1 + k % 28, k % 60);
                                s.push_image_with(
                                    &repo,
                                    Some(&tag),
                                    &format!("{repo}:{k}"),
                                    &created,
                                    "amd64",
                                    Some((&ld, layer.len() as u64)),
                                )
                                .await
                            }
                        };
                        map.insert(tag, img.digest.clone());
                        prev = Some(img);
                    }
                    (repo, map)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// The name of the `i`th fleet repository: ten per project, some nested two levels.
pub fn fleet_repo_name(i: usize) -> String {
    let (g, j) = (i / 10, i % 10);
    if j == 9 {
        format!("project-{g:02}/team/service-{j}")
    } else {
        format!("project-{g:02}/service-{j}")
    }
}
