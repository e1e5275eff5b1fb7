//! In-use protection: which images the cluster runs or will run.
//!
//! Pods (spec images and, for digests, `status.containerStatuses[].imageID`) and the pod
//! templates of Deployments, StatefulSets, DaemonSets, Jobs, CronJobs and ReplicaSets (those
//! kept for rollback too) are watched cluster-wide. Each object is reduced at once to a few
//! normalised references (registry host, repository, tag, digest), so memory grows with the
//! number of distinct images in use, not with the size of the Pod objects.
//!
//! Fail closed: until every watch has completed its first listing, [`InUseIndex::synced`] is
//! false and Enforce runs must not delete.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::oci::host::image_host;
use crate::oci::ImageReference;

/// One image an object uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageUse {
    /// Registry host (`host` or `host:port`), lower case.
    pub host: String,
    /// Repository.
    pub repository: String,
    /// Tag, when the reference had one (or `latest` when it had neither tag nor digest).
    pub tag: Option<String>,
    /// Digest, from the reference or the runtime's image ID.
    pub digest: Option<String>,
}

/// The images one object uses, and who it is (`Pod team-a/web-7f9`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Human-readable owner, used in "kept: in use by …" reasons.
    pub by: String,
    /// The images.
    pub images: Vec<ImageUse>,
}

fn image_use(reference: &ImageReference) -> ImageUse {
    ImageUse {
        host: image_host(&reference.registry),
        repository: reference.repository.clone(),
        tag: reference.tag_or_default().map(str::to_string),
        digest: reference.digest.clone(),
    }
}

/// Images of a pod spec (containers, init and ephemeral containers).
pub fn images_of_spec(spec: &PodSpec) -> Vec<ImageUse> {
    let mut out = BTreeSet::new();
    let images = spec
        .containers
        .iter()
        .filter_map(|c| c.image.as_deref())
        .chain(
            spec.init_containers
                .iter()
                .flatten()
                .filter_map(|c| c.image.as_deref()),
        )
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .filter_map(|c| c.image.as_deref()),
        );
    for image in images {
        if let Ok(r) = ImageReference::parse(image) {
            out.insert(image_use(&r));
        }
    }
    out.into_iter().collect()
}

/// Images of a Pod: its spec, plus the digests the runtime resolved (`imageID`).
pub fn images_of_pod(pod: &Pod) -> Vec<ImageUse> {
    let mut out: BTreeSet<ImageUse> = pod
        .spec
        .as_ref()
        .map(images_of_spec)
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(status) = &pod.status {
        let statuses = status
            .container_statuses
            .iter()
            .flatten()
            .chain(status.init_container_statuses.iter().flatten())
            .chain(status.ephemeral_container_statuses.iter().flatten());
        for s in statuses {
            if let Ok(r) = ImageReference::parse_image_id(&s.image_id) {
                if r.digest.is_some() {
                    out.insert(ImageUse {
                        tag: None,
                        ..image_use(&r)
                    });
                }
            }
            // The spec image resolved to that digest: remember the pair under the spec's
            // host and repository too (the imageID may name a mirror).
            if let (Ok(spec_ref), Some(digest)) = (
                ImageReference::parse(&s.image),
                s.image_id.rsplit_once('@').map(|(_, d)| d),
            ) {
                if digest.starts_with("sha256:") {
                    out.insert(ImageUse {
                        tag: None,
                        digest: Some(digest.to_string()),
                        ..image_use(&spec_ref)
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

fn images_of_template(t: Option<&PodTemplateSpec>) -> Vec<ImageUse> {
    t.and_then(|t| t.spec.as_ref())
        .map(images_of_spec)
        .unwrap_or_default()
}

/// The tags and digests of one registry in use, with who uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InUseRefs {
    /// (repository, tag) → users.
    pub tags: HashMap<(String, String), BTreeSet<String>>,
    /// (repository, digest) → users.
    pub digests: HashMap<(String, String), BTreeSet<String>>,
}

impl InUseRefs {
    /// As the planner's data, naming the first user of each reference.
    pub fn to_in_use(&self) -> crate::retention::InUse {
        let mut in_use = crate::retention::InUse::new();
        for ((repo, tag), users) in &self.tags {
            if let Some(by) = users.iter().next() {
                in_use.add_tag(repo, tag, by);
            }
        }
        for ((repo, digest), users) in &self.digests {
            if let Some(by) = users.iter().next() {
                in_use.add_digest(repo, digest, by);
            }
        }
        in_use
    }
}

#[derive(Default)]
struct Source {
    objects: HashMap<String, Arc<Usage>>,
    pending: Option<HashMap<String, Arc<Usage>>>,
    synced: bool,
}

/// The cluster's images in use, kept current by [`InUseIndex::watch`].
#[derive(Clone, Default)]
pub struct InUseIndex {
    sources: Arc<RwLock<HashMap<&'static str, Source>>>,
    expected: Arc<AtomicUsize>,
}

impl InUseIndex {
    /// An empty index that considers itself synced once `expected` sources have listed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the usage of one object of a source kind.
    pub fn apply(&self, kind: &'static str, key: String, usage: Usage) {
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        let source = sources.entry(kind).or_default();
        let usage = Arc::new(usage);
        match source.pending.as_mut() {
            Some(pending) => {
                pending.insert(key, usage);
            }
            None => {
                source.objects.insert(key, usage);
            }
        }
    }

    /// Forgets one object.
    pub fn delete(&self, kind: &'static str, key: &str) {
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        if let Some(source) = sources.get_mut(kind) {
            source.objects.remove(key);
            if let Some(p) = source.pending.as_mut() {
                p.remove(key);
            }
        }
    }

    /// A (re)listing of a source kind starts: its objects are collected aside until done.
    /// A relisting means events were missed (the watch expired, or failed), so the source is
    /// not synced until it completes: runs wait rather than trust a stale view.
    pub fn begin_list(&self, kind: &'static str) {
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        let source = sources.entry(kind).or_default();
        source.pending = Some(HashMap::new());
        source.synced = false;
    }

    /// The watch of a source kind failed: it is not synced until it has listed again.
    pub fn lost(&self, kind: &'static str) {
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        sources.entry(kind).or_default().synced = false;
    }

    /// A (re)listing completed: it replaces what the source held, and the source is synced.
    pub fn end_list(&self, kind: &'static str) {
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        let source = sources.entry(kind).or_default();
        if let Some(p) = source.pending.take() {
            source.objects = p;
        }
        source.synced = true;
    }

    /// Whether every watched kind has completed a listing since its watch last failed.
    pub fn synced(&self) -> bool {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner());
        let expected = self.expected.load(Ordering::SeqCst);
        expected > 0 && sources.values().filter(|s| s.synced).count() >= expected
    }

    /// Number of objects indexed (for metrics and benchmarks).
    pub fn len(&self) -> usize {
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner());
        sources.values().map(|s| s.objects.len()).sum()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything in use on a registry known by any of `hosts` (`host` or `host:port`), in
    /// the repositories `in_scope` accepts (a run needs no other: it decides nothing else).
    pub fn for_hosts(&self, hosts: &[String], in_scope: impl Fn(&str) -> bool) -> InUseRefs {
        let hosts: BTreeSet<String> = hosts.iter().map(|h| image_host(h)).collect();
        let mut out = InUseRefs::default();
        let sources = self.sources.read().unwrap_or_else(|p| p.into_inner());
        for usage in sources.values().flat_map(|s| s.objects.values()) {
            for image in usage
                .images
                .iter()
                .filter(|i| hosts.contains(&i.host) && in_scope(&i.repository))
            {
                if let Some(tag) = &image.tag {
                    out.tags
                        .entry((image.repository.clone(), tag.clone()))
                        .or_default()
                        .insert(usage.by.clone());
                }
                if let Some(digest) = &image.digest {
                    out.digests
                        .entry((image.repository.clone(), digest.clone()))
                        .or_default()
                        .insert(usage.by.clone());
                }
            }
        }
        out
    }

    /// Watches Pods and workload templates cluster-wide until the returned future is dropped.
    pub async fn watch(self, client: Client) {
        self.expected.store(7, Ordering::SeqCst);
        futures::join!(
            self.clone()
                .watch_kind::<Pod>(client.clone(), "Pod", images_of_pod),
            self.clone()
                .watch_kind::<Deployment>(client.clone(), "Deployment", |d| {
                    images_of_template(d.spec.as_ref().map(|s| &s.template))
                }),
            self.clone()
                .watch_kind::<StatefulSet>(client.clone(), "StatefulSet", |s| {
                    images_of_template(s.spec.as_ref().map(|s| &s.template))
                }),
            self.clone()
                .watch_kind::<DaemonSet>(client.clone(), "DaemonSet", |d| {
                    images_of_template(d.spec.as_ref().map(|s| &s.template))
                }),
            self.clone()
                .watch_kind::<ReplicaSet>(client.clone(), "ReplicaSet", |r| {
                    images_of_template(r.spec.as_ref().and_then(|s| s.template.as_ref()))
                }),
            self.clone().watch_kind::<Job>(client.clone(), "Job", |j| {
                images_of_template(j.spec.as_ref().map(|s| &s.template))
            }),
            self.clone()
                .watch_kind::<CronJob>(client.clone(), "CronJob", |c| {
                    images_of_template(
                        c.spec
                            .as_ref()
                            .and_then(|s| s.job_template.spec.as_ref())
                            .map(|s| &s.template),
                    )
                }),
        );
    }

    async fn watch_kind<K>(
        self,
        client: Client,
        kind: &'static str,
        extract: fn(&K) -> Vec<ImageUse>,
    ) where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let api: Api<K> = Api::all(client);
        let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
        // While a watch fails, Pods created meanwhile are unseen; a watch that resumes does not
        // say when it has caught up. So a failure makes the source unsynced, and a fresh
        // watcher lists everything again before the source is trusted.
        loop {
            let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
            loop {
                match stream.try_next().await {
                    Ok(Some(event)) => match event {
                        watcher::Event::Init => self.begin_list(kind),
                        watcher::Event::InitDone => self.end_list(kind),
                        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                            let by = format!("{kind} {}", key(&o));
                            let images = extract(&o);
                            if images.is_empty() {
                                self.delete(kind, &key(&o));
                            } else {
                                self.apply(kind, key(&o), Usage { by, images });
                            }
                        }
                        watcher::Event::Delete(o) => self.delete(kind, &key(&o)),
                    },
                    Ok(None) => return,
                    Err(e) => {
                        self.lost(kind);
                        warn!(kind, error = %e, "watching for images in use failed; listing again in 5 s (runs wait meanwhile)");
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodStatus};

    fn pod(images: &[&str], statuses: &[(&str, &str)]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: images
                    .iter()
                    .map(|i| Container {
                        name: "c".into(),
                        image: Some(i.to_string()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(
                    statuses
                        .iter()
                        .map(|(image, id)| ContainerStatus {
                            name: "c".into(),
                            image: image.to_string(),
                            image_id: id.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_pod_uses_its_tags_and_the_digests_the_runtime_resolved() {
        let p = pod(
            &["Registry.Example.com:5000/team-a/web:v1", "nginx"],
            &[(
                "registry.example.com:5000/team-a/web:v1",
                &format!("docker-pullable://registry.example.com:5000/team-a/web@{D}"),
            )],
        );
        let images = images_of_pod(&p);
        assert!(images.contains(&ImageUse {
            host: "registry.example.com:5000".into(),
            repository: "team-a/web".into(),
            tag: Some("v1".into()),
            digest: None
        }));
        assert!(images.contains(&ImageUse {
            host: "registry.example.com:5000".into(),
            repository: "team-a/web".into(),
            tag: None,
            digest: Some(D.into())
        }));
        assert!(images.contains(&ImageUse {
            host: "docker.io".into(),
            repository: "library/nginx".into(),
            tag: Some("latest".into()),
            digest: None
        }));
    }

    #[test]
    fn lookups_match_any_host_name_of_the_registry_and_name_the_user() {
        let index = InUseIndex::new();
        index.apply(
            "Pod",
            "team-a/web-7f9".into(),
            Usage {
                by: "Pod team-a/web-7f9".into(),
                images: images_of_pod(&pod(&["reg.internal:5000/team-a/web:v1"], &[])),
            },
        );
        index.apply(
            "Pod",
            "team-b/x".into(),
            Usage {
                by: "Pod team-b/x".into(),
                images: images_of_pod(&pod(&["other.example.com/team-a/web:v2"], &[])),
            },
        );
        let hosts: [String; 2] = [
            "main.platform.svc.cluster.local:5000".into(),
            "REG.internal:5000".into(),
        ];
        let refs = index.for_hosts(&hosts, |_| true);
        assert_eq!(refs.tags.len(), 1);
        assert_eq!(
            refs.tags[&("team-a/web".to_string(), "v1".to_string())]
                .iter()
                .next()
                .unwrap(),
            "Pod team-a/web-7f9"
        );
        assert!(
            index
                .for_hosts(&hosts, |r| r.starts_with("team-b/"))
                .tags
                .is_empty(),
            "only repositories in the run's scope are collected"
        );
        index.delete("Pod", "team-a/web-7f9");
        assert!(index
            .for_hosts(&["reg.internal:5000".into()], |_| true)
            .tags
            .is_empty());
    }

    #[test]
    fn the_index_is_not_synced_until_every_source_has_listed() {
        let index = InUseIndex::new();
        index.expected.store(2, Ordering::SeqCst);
        index.begin_list("Pod");
        index.apply(
            "Pod",
            "a/b".into(),
            Usage {
                by: "Pod a/b".into(),
                images: vec![],
            },
        );
        assert!(!index.synced());
        assert_eq!(
            index.len(),
            0,
            "a listing in progress does not replace what was there"
        );
        index.end_list("Pod");
        assert!(!index.synced());
        index.begin_list("Deployment");
        index.end_list("Deployment");
        assert!(index.synced());
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_failed_watch_or_a_relisting_makes_the_index_unsynced_until_it_has_listed_again() {
        let index = InUseIndex::new();
        index.expected.store(1, Ordering::SeqCst);
        index.begin_list("Pod");
        index.end_list("Pod");
        assert!(index.synced());
        // the watch fails (API server unreachable, permission revoked): Pods created
        // meanwhile are unseen, so runs must wait
        index.lost("Pod");
        assert!(!index.synced());
        index.begin_list("Pod");
        assert!(!index.synced());
        index.end_list("Pod");
        assert!(index.synced());
        // a relisting after an expired watch (410) means events were missed
        index.begin_list("Pod");
        assert!(!index.synced());
        index.end_list("Pod");
        assert!(index.synced());
    }
}
