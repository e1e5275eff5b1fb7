//! The artifact writer against a real CNCF distribution 2.8 registry (`docker-registry`):
//! blobs pushed whole and chunked, cross-repository mounts, artifact manifests with a subject
//! found through the subject's referrers, and refused pushes that leave nothing behind.

mod support;

use std::collections::BTreeMap;
use std::io::Write;

use bytes::Bytes;
use registry_operator::oci::{
    ArtifactManifest, BlobOutcome, ClientOptions, Credentials, Denial, MountOutcome, OciError,
    Operation, PushRefusal, ReferrersSource, Refused, RegistryClient, SubjectLink,
    DEFAULT_CHUNK_BYTES,
};
use support::proxy::{Fault, FaultProxy, FaultRule};
use support::registry::{RegistryOptions, TestRegistry};
use support::seed::Seeder;

const LEDGER: &str = "application/vnd.example.run-ledger.v1+json";

fn client(url: &str) -> RegistryClient {
    RegistryClient::new(url, Credentials::Anonymous, ClientOptions::default()).expect("client")
}

fn ledger(layers: Vec<oci_spec::image::Descriptor>, ident: &str) -> ArtifactManifest {
    ArtifactManifest {
        artifact_type: LEDGER.to_string(),
        layers,
        subject: None,
        annotations: BTreeMap::from([("test.ident".to_string(), ident.to_string())]),
    }
}

#[tokio::test]
async fn an_artifact_pushed_with_a_subject_is_found_among_the_subjects_referrers() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let img = s
        .push_image("app", Some("v1"), "app", "2026-01-01T00:00:00Z")
        .await;
    let c = client(&reg.url);
    let subject = c.get_manifest("app", &img.digest).await.unwrap().head();
    let subject = oci_spec::image::Descriptor::new(
        subject.media_type.as_str().into(),
        subject.size,
        subject.digest.parse::<oci_spec::image::Digest>().unwrap(),
    );
    let mut pushed = Vec::new();
    for ident in ["first", "second"] {
        let layer = c
            .push_blob("app", Bytes::from(format!("ledger {ident}")))
            .await
            .unwrap();
        let mut a = ledger(vec![layer.descriptor(LEDGER).unwrap()], ident);
        a.subject = Some(subject.clone());
        let p = c.push_artifact("app", &a, None).await.unwrap();
        // distribution 2.8 has no referrers API: the writer keeps the tag schema's index
        assert_eq!(p.subject_link, SubjectLink::TagSchema);
        pushed.push(p);
    }

    let r = c.referrers("app", &img.digest).await.unwrap();
    assert_eq!(r.source, ReferrersSource::TagSchema);
    let found: Vec<(String, Option<String>)> = r
        .descriptors
        .iter()
        .map(|d| {
            (
                d.digest().to_string(),
                d.artifact_type().as_ref().map(|t| t.to_string()),
            )
        })
        .collect();
    assert_eq!(
        found,
        pushed
            .iter()
            .map(|p| (p.digest.clone(), Some(LEDGER.to_string())))
            .collect::<Vec<_>>()
    );
    // the manifest read back is the one pushed, subject and all
    let back = c.get_manifest("app", &pushed[1].digest).await.unwrap();
    assert_eq!(back.raw, pushed[1].bytes);
    assert_eq!(back.artifact_type().as_deref(), Some(LEDGER));
    assert_eq!(back.annotation("test.ident"), Some("second"));
    assert_eq!(
        back.subject().map(|s| s.digest().to_string()),
        Some(img.digest.clone())
    );
    assert_eq!(
        back.config_digest().as_deref(),
        Some(registry_operator::oci::digest::sha256_digest(b"{}").as_str())
    );
}

#[tokio::test]
async fn a_20_mib_blob_is_pushed_from_a_file_in_bounded_chunks() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.url).await;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let mut expected = sha2::Sha256::default();
    // written a MiB at a time, never held whole
    for i in 0..20u8 {
        let mib: Vec<u8> = (0..1024 * 1024)
            .map(|j: u32| (j as u8) ^ i.wrapping_mul(31))
            .collect();
        sha2::Digest::update(&mut expected, &mib);
        file.write_all(&mib).unwrap();
    }
    file.flush().unwrap();
    let expected = format!("sha256:{}", hex::encode(sha2::Digest::finalize(expected)));

    let c = client(proxy.url());
    let pushed = c.push_blob_file("big", file.path()).await.unwrap();
    assert_eq!(pushed.digest, expected);
    assert_eq!(pushed.size, 20 * 1024 * 1024);
    let chunks = (20 * 1024 * 1024usize).div_ceil(DEFAULT_CHUNK_BYTES) as u32;
    assert_eq!(pushed.outcome, BlobOutcome::UploadedChunked(chunks));
    // one session, one PATCH per chunk (no request carries more than a chunk), one PUT
    assert_eq!(proxy.count("POST"), 1);
    assert_eq!(proxy.count("PATCH"), chunks as u64);
    assert_eq!(proxy.count("PUT"), 1);
    assert_eq!(c.stats().get(Operation::UploadChunk), chunks as u64);
    assert!(c.blob_exists("big", &expected).await.unwrap());
    // and it comes back, streamed to a file, verified
    let back = tempfile::NamedTempFile::new().unwrap();
    let size = c
        .fetch_blob_to_file("big", &expected, back.path(), pushed.size)
        .await
        .unwrap();
    assert_eq!(size, pushed.size);
    assert_eq!(
        registry_operator::oci::digest::sha256_digest(&std::fs::read(back.path()).unwrap()),
        expected
    );
    // a blob larger than its descriptor says is refused, and the file removed
    let e = c
        .fetch_blob_to_file("big", &expected, back.path(), pushed.size - 1)
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "InvalidResponse", "{e}");
    assert!(!back.path().exists());

    // pushing it again uploads nothing
    proxy.reset_counts();
    let again = c.push_blob_file("big", file.path()).await.unwrap();
    assert_eq!(again.outcome, BlobOutcome::AlreadyPresent);
    assert_eq!(
        proxy.count("PATCH") + proxy.count("POST") + proxy.count("PUT"),
        0
    );
}

#[tokio::test]
async fn mounting_a_blob_from_another_repository_uploads_nothing() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.url).await;
    let c = client(proxy.url());
    let blob = c
        .push_blob("source/app", Bytes::from_static(b"shared layer bytes"))
        .await
        .unwrap();
    assert_eq!(blob.outcome, BlobOutcome::Uploaded);
    proxy.reset_counts();

    let m = c
        .mount_blob("ledger/app", "source/app", &blob.digest)
        .await
        .unwrap();
    assert_eq!(m, MountOutcome::Mounted);
    assert_eq!(proxy.count("POST"), 1);
    assert_eq!(proxy.count("PATCH") + proxy.count("PUT"), 0);
    assert!(c.blob_exists("ledger/app", &blob.digest).await.unwrap());

    // a blob the source does not hold: the registry opens an upload instead (202); the
    // client abandons it and says so
    let missing = registry_operator::oci::digest::sha256_digest(b"not pushed anywhere");
    proxy.reset_counts();
    let m = c
        .mount_blob("ledger/app", "source/app", &missing)
        .await
        .unwrap();
    assert_eq!(m, MountOutcome::Declined);
    assert_eq!(proxy.count("DELETE"), 1, "the opened upload is abandoned");
    assert!(!c.blob_exists("ledger/app", &missing).await.unwrap());
}

#[tokio::test]
async fn a_read_only_registry_refuses_the_push_as_read_only_and_keeps_nothing() {
    let reg = TestRegistry::start_with(RegistryOptions {
        read_only: true,
        ..RegistryOptions::default()
    });
    let c = client(&reg.url);
    let layer = c
        .push_blob("ledger", Bytes::from_static(b"run 1"))
        .await
        .unwrap_err();
    assert_eq!(
        layer.push_refusal(),
        Some(PushRefusal::RegistryReadOnly),
        "{layer}"
    );
    assert_eq!(layer.reason(), "PushNotAllowed");
    let a = c
        .push_artifact("ledger", &ledger(Vec::new(), "run-1"), Some("run-1"))
        .await
        .unwrap_err();
    assert_eq!(a.push_refusal(), Some(PushRefusal::RegistryReadOnly), "{a}");
    assert!(c.catalog().await.unwrap().is_empty());
    assert!(c
        .artifacts_by_tag_prefix("ledger", "run-")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_push_the_registry_forbids_midway_is_a_typed_denial_and_leaves_no_blob() {
    let reg = TestRegistry::start();
    let proxy = FaultProxy::start(&reg.url).await;
    let c = client(proxy.url());
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&vec![7u8; DEFAULT_CHUNK_BYTES * 2 + 10])
        .unwrap();
    // the session opens, its first chunk is refused
    proxy.inject(FaultRule::new(Fault::Status(403)).method("PATCH"));
    let e = c.push_blob_file("ledger", file.path()).await.unwrap_err();
    assert_eq!(
        e.push_refusal(),
        Some(PushRefusal::Account(Denial::PermissionDenied(
            Refused::Push
        ))),
        "{e}"
    );
    assert!(matches!(
        e,
        OciError::Forbidden {
            op: Operation::UploadChunk,
            ..
        }
    ));
    // not retried blind, and the session abandoned
    assert_eq!(proxy.count("PATCH"), 1);
    assert_eq!(proxy.count("PUT"), 0);
    assert_eq!(proxy.count("DELETE"), 1);
    proxy.clear();
    let digest = {
        let bytes = std::fs::read(file.path()).unwrap();
        registry_operator::oci::digest::sha256_digest(&bytes)
    };
    assert!(!c.blob_exists("ledger", &digest).await.unwrap());
    // a refused manifest push is the same denial, and no tag appears
    proxy.inject(
        FaultRule::new(Fault::Status(403))
            .method("PUT")
            .path_contains("/manifests/"),
    );
    let e = c
        .push_artifact("ledger", &ledger(Vec::new(), "run-1"), Some("run-1"))
        .await
        .unwrap_err();
    assert_eq!(
        e.push_refusal(),
        Some(PushRefusal::Account(Denial::PermissionDenied(
            Refused::Push
        ))),
        "{e}"
    );
    proxy.clear();
    assert!(c
        .artifacts_by_tag_prefix("ledger", "run-")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn artifacts_are_listed_by_tag_prefix_and_their_layers_fetched_verified() {
    let reg = TestRegistry::start();
    let c = client(&reg.url);
    let mut digests = BTreeMap::new();
    for run in ["run-1", "run-2", "other"] {
        let body = format!("ledger of {run}");
        let layer = c.push_blob("ledger", Bytes::from(body)).await.unwrap();
        let p = c
            .push_artifact(
                "ledger",
                &ledger(vec![layer.descriptor(LEDGER).unwrap()], run),
                Some(run),
            )
            .await
            .unwrap();
        assert_eq!(p.subject_link, SubjectLink::None);
        digests.insert(run.to_string(), (p.digest, layer.digest));
    }
    let found = c.artifacts_by_tag_prefix("ledger", "run-").await.unwrap();
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        vec!["run-1", "run-2"]
    );
    assert_eq!(found["run-2"].digest, digests["run-2"].0);
    let m = c.get_manifest("ledger", "run-2").await.unwrap();
    let ManifestLayer(layer) = first_layer(&m);
    assert_eq!(layer, digests["run-2"].1);
    assert_eq!(
        c.fetch_blob("ledger", &layer).await.unwrap(),
        b"ledger of run-2"
    );
    assert!(c
        .artifacts_by_tag_prefix("nothing-here", "run-")
        .await
        .unwrap()
        .is_empty());
}

struct ManifestLayer(String);

fn first_layer(m: &registry_operator::oci::Manifest) -> ManifestLayer {
    match &m.content {
        registry_operator::oci::ManifestContent::Image(i) => {
            ManifestLayer(i.layers()[0].digest().to_string())
        }
        other => panic!("not an image manifest: {other:?}"),
    }
}

#[tokio::test]
async fn an_index_copied_to_another_repository_by_mounts_keeps_its_digests_and_uploads_no_data() {
    let reg = TestRegistry::start();
    let s = Seeder::new(&reg.url, None);
    let index = s
        .push_index("app", "v1", "multi", "2026-01-01T00:00:00Z")
        .await;
    let proxy = FaultProxy::start(&reg.url).await;
    let c = client(proxy.url());
    let source = c.get_manifest("app", "v1").await.unwrap();
    for child in source.children() {
        let child = child.digest().to_string();
        let m = c.get_manifest("app", &child).await.unwrap();
        let registry_operator::oci::ManifestContent::Image(image) = &m.content else {
            panic!("child {child} is not an image manifest");
        };
        let blobs = std::iter::once(image.config().digest().to_string())
            .chain(image.layers().iter().map(|l| l.digest().to_string()));
        for blob in blobs {
            assert_eq!(
                c.mount_blob("copy/app", "app", &blob).await.unwrap(),
                MountOutcome::Mounted
            );
        }
        let copied = c
            .push_manifest(
                "copy/app",
                &child,
                Bytes::from(m.raw.clone()),
                &m.media_type,
            )
            .await
            .unwrap();
        assert_eq!(copied, child);
    }
    let copied = c
        .push_manifest(
            "copy/app",
            "v1--run-1",
            Bytes::from(source.raw.clone()),
            &source.media_type,
        )
        .await
        .unwrap();
    assert_eq!(copied, index.digest);
    let head = c
        .head_manifest("copy/app", "v1--run-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest, index.digest);
    // only manifests were PUT; no blob upload carried a byte
    assert_eq!(proxy.count("PATCH"), 0);
    assert_eq!(proxy.count("PUT"), proxy.count_path("PUT", "/manifests/"));
    assert_eq!(c.stats().get(Operation::CompleteUpload), 0);
    // bytes that are not what their digest says are refused before anything is sent
    let e = c
        .push_manifest(
            "copy/app",
            &index.digest,
            Bytes::from_static(b"{}"),
            registry_operator::oci::media_types::OCI_INDEX,
        )
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "DigestMismatch");
}

#[tokio::test]
async fn a_push_with_the_right_password_lands_and_with_a_wrong_one_is_a_typed_refusal() {
    let reg = TestRegistry::start_with_auth("robot", "s3cret");
    let with = |password: &str| {
        RegistryClient::new(
            &reg.url,
            Credentials::basic("robot", password),
            ClientOptions::default(),
        )
        .unwrap()
    };
    let c = with("s3cret");
    let layer = c
        .push_blob("ledger", Bytes::from_static(b"run 1"))
        .await
        .unwrap();
    let p = c
        .push_artifact(
            "ledger",
            &ledger(vec![layer.descriptor(LEDGER).unwrap()], "run-1"),
            Some("run-1"),
        )
        .await
        .unwrap();
    assert_eq!(
        c.head_manifest("ledger", "run-1")
            .await
            .unwrap()
            .unwrap()
            .digest,
        p.digest
    );

    let wrong = with("wrong");
    let e = wrong
        .push_artifact("ledger", &ledger(Vec::new(), "run-2"), Some("run-2"))
        .await
        .unwrap_err();
    assert_eq!(
        e.push_refusal(),
        Some(PushRefusal::Account(Denial::CredentialsRejected)),
        "{e}"
    );
    assert_eq!(
        c.artifacts_by_tag_prefix("ledger", "run-")
            .await
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec!["run-1"]
    );
}
