//! Version gating and determinism of the zot config renderer: a config rendered for zot X only
//! holds keys zot X accepts, features a release lacks are refused by name with the first
//! release that has them, and equal input always gives the same bytes and hash.

use registry_operator::api::common::{SecretKeyRef, SecretRef};
use registry_operator::api::registry::*;
use registry_operator::cli::render::render_manifest;
use registry_operator::zot::keys::{self, KeyStatus};
use registry_operator::zot::{
    config_hash, ClusterWiring, RenderErrors, RenderedConfig, Wiring, ZotError, ZotVersion,
};

fn v(patch: u32) -> ZotVersion {
    ZotVersion::new(2, 1, patch)
}

/// What the renderer takes: the spec and what the operator wires in.
#[derive(Clone, Debug, Default)]
struct Input {
    spec: RegistrySpec,
    wiring: Wiring,
}

fn render(input: &Input, version: ZotVersion) -> Result<RenderedConfig, RenderErrors> {
    registry_operator::zot::render(&input.spec.zot(), &input.wiring, version)
}

fn secret(name: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: name.into(),
        key: None,
    }
}

fn sync() -> SyncSpec {
    SyncSpec {
        credentials_secret_ref: Some(secret("sync")),
        registries: vec![SyncRegistry {
            urls: vec!["https://mirror.example".into()],
            on_demand: Some(true),
            poll_interval: Some("6h".into()),
            tls_verify: Some(true),
            content: vec![SyncContent {
                prefix: "library/**".into(),
                tags_regex: Some("^v[0-9]+".into()),
                exclude_tags_regex: Some("-rc".into()),
                semver: Some(true),
                destination: Some("/hub".into()),
                strip_prefix: Some(true),
            }],
            max_retries: Some(3),
            retry_delay: Some("5m".into()),
            only_signed: Some(false),
        }],
    }
}

/// Everything the renderer can emit on a local volume, for one release.
fn rich_local(version: ZotVersion) -> Input {
    let spec = RegistrySpec {
        dedupe: Some(true),
        gc: Some(GcSpec {
            enabled: Some(true),
            interval: Some("1h".into()),
            delay: Some("2h".into()),
            time_window: (version >= v(19)).then(|| "22:00-04:00".to_string()),
        }),
        untagged: Some(UntaggedSpec {
            delete: Some(true),
            delay: Some("24h".into()),
        }),
        referrers: Some(ReferrersSpec {
            delete_orphans: Some(true),
        }),
        tls: Some(SecretRef { name: "tls".into() }),
        auth: Some(AuthSpec {
            realm: Some("zot".into()),
            mtls: Some(MtlsSpec {
                client_ca_secret_ref: secret("clients"),
                ..MtlsSpec::default()
            }),
            htpasswd_secret_ref: Some(secret("htpasswd")),
            fail_delay_seconds: Some(1),
            access_control: Some(AccessControlSpec {
                repositories: vec![RepositoryAccess {
                    pattern: "**".into(),
                    policies: vec![AccessPolicy {
                        users: vec!["ci".into()],
                        groups: Vec::new(),
                        actions: vec![AccessAction::Read, AccessAction::Create],
                    }],
                    default_policy: vec![AccessAction::Read],
                    anonymous_policy: vec![AccessAction::Read],
                }],
                admin_users: vec!["admin".into()],
                admin_groups: Vec::new(),
                metrics_users: vec!["prom".into()],
            }),
            ..AuthSpec::default()
        }),
        http: Some(HttpSpec {
            docker_compat: Some(true),
            read_timeout: (version >= v(17)).then(|| "1h".to_string()),
            write_timeout: (version >= v(17)).then(|| "0s".to_string()),
        }),
        log: Some(LogSpec {
            level: Some(LogLevel::Debug),
        }),
        sync: Some(sync()),
        extensions: Some(ExtensionsSpec {
            search: Some(true),
            ui: Some(true),
            metrics: Some(true),
            scrub: Some(ScrubSpec {
                interval: Some("24h".into()),
            }),
        }),
        ..RegistrySpec::default()
    };
    Input {
        spec,
        wiring: Wiring::default(),
    }
}

/// A three-member S3 cluster with the given cache (UI logins only with redis, which can share
/// the sessions).
fn rich_s3(version: ZotVersion, cache: CacheSpec) -> Input {
    let mut input = rich_local(version);
    if let Some(extensions) = input.spec.extensions.as_mut() {
        extensions.ui = Some(cache.redis.is_some());
    }
    input.spec.storage = Some(StorageSpec {
        s3: Some(S3Storage {
            bucket: "zot-images".into(),
            region: "us-east-1".into(),
            endpoint: Some("http://minio:9000".into()),
            root_directory: Some("/zot".into()),
            cache: Some(cache),
            credentials_secret_ref: None,
        }),
        ..StorageSpec::default()
    });
    input.wiring.cluster = Some(ClusterWiring {
        members: (0..3)
            .map(|i| format!("zot-{i}.zot-headless.ns.svc.cluster.local:5000"))
            .collect(),
        hash_key: "0123456789abcdef".into(),
    });
    input
}

fn redis() -> CacheSpec {
    CacheSpec {
        redis: Some(RedisCache {
            url: "redis://redis:6379/0".into(),
            key_prefix: Some("zot".into()),
        }),
        dynamodb: None,
    }
}

fn dynamodb_in(region: &str, endpoint: Option<&str>) -> CacheSpec {
    CacheSpec {
        redis: None,
        dynamodb: Some(DynamoDbCache {
            region: region.into(),
            endpoint: endpoint.map(String::from),
            table_prefix: Some("zot".into()),
        }),
    }
}

fn dynamodb() -> CacheSpec {
    dynamodb_in("us-east-1", Some("http://dynamodb:8000"))
}

#[test]
fn every_key_rendered_for_a_release_is_a_key_that_release_accepts() {
    for version in ZotVersion::supported() {
        let inputs = [
            ("local", rich_local(version)),
            ("s3+redis", rich_s3(version, redis())),
            ("s3+dynamodb", rich_s3(version, dynamodb())),
            ("defaults", Input::default()),
        ];
        for (name, input) in inputs {
            let rendered = render(&input, version)
                .unwrap_or_else(|e| panic!("{name} on {version}: {:#?}", e.lines()));
            for path in keys::key_paths(&rendered.config) {
                assert!(
                    keys::accepts(&path, version),
                    "{name}: {path} rendered for {version}, which does not accept it"
                );
            }
        }
        for sample in [
            "registry_v1alpha1_registry.yaml",
            "registry_v1alpha1_registry_s3.yaml",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/samples")
                .join(sample);
            let text = std::fs::read_to_string(path).expect("sample");
            let desired = render_manifest(&text, Some(&version.to_string()))
                .unwrap_or_else(|e| panic!("{sample} on {version}: {e:#?}"));
            for path in keys::key_paths(&desired.config.config) {
                assert!(
                    keys::accepts(&path, version),
                    "{sample}: {path} on {version}"
                );
            }
        }
    }
}

#[test]
fn the_rich_inputs_exercise_every_block_the_renderer_knows() {
    let rendered = render(&rich_s3(v(20), redis()), v(20)).expect("valid");
    let paths = keys::key_paths(&rendered.config);
    for expected in [
        "storage.gcTimeWindow",
        "storage.retention.policies[].deleteReferrers",
        "storage.storageDriver.regionendpoint",
        "storage.cacheDriver.url",
        "http.tls.cacert",
        "http.auth.failDelay",
        "http.compat",
        "http.readTimeout",
        "http.writeTimeout",
        "http.accessControl.metrics.users",
        "extensions.sync.registries[].content[].tags.excludeRegex",
        "extensions.scrub.interval",
        "extensions.ui.enable",
        "http.auth.sessionDriver.url",
        "cluster.hashKey",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not rendered"
        );
    }
}

#[test]
fn gc_time_window_on_v2_1_18_is_refused_naming_the_feature_and_v2_1_19() {
    let mut input = rich_local(v(18));
    if let Some(gc) = input.spec.gc.as_mut() {
        gc.time_window = Some("01:00-03:00".into());
    }
    let errors = render(&input, v(18)).expect_err("v2.1.18 has no gcTimeWindow");
    assert_eq!(
        errors.0,
        [ZotError::FeatureUnavailable {
            feature: "gcTimeWindow (spec.gc.timeWindow)".into(),
            min: v(19),
            version: v(18),
        }]
    );
    let message = errors.lines().join("\n");
    assert!(
        message.contains("gcTimeWindow") && message.contains("v2.1.19"),
        "{message}"
    );
    let rendered = render(&input, v(19)).expect("v2.1.19 has gcTimeWindow");
    assert_eq!(rendered.config["storage"]["gcTimeWindow"], "01:00-03:00");
}

/// A concrete path for a key pattern: user map keys and free-form maps become `x`.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("[]", "")
        .replace("**", "x")
        .replace('*', "x")
}

#[test]
fn every_versioned_key_is_refused_one_release_early_and_accepted_from_its_first_release() {
    let mut checked = 0;
    for (pattern, since) in keys::all_entries() {
        let path = concrete(&pattern);
        assert!(keys::accepts(&path, since), "{path} at {since}");
        if since > ZotVersion::OLDEST {
            let before = ZotVersion::new(since.major, since.minor, since.patch - 1);
            assert_eq!(
                keys::key_status(&path, before),
                KeyStatus::NeedsVersion(since),
                "{path}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} versioned keys");
}

#[test]
fn raw_config_keys_of_a_later_release_are_refused_with_the_release_that_has_them() {
    let mut input = Input::default();
    input.spec.config = Some(serde_json::json!({"http": {"readTimeout": "5m"}}));
    let errors = render(&input, v(16)).expect_err("readTimeout is v2.1.17+");
    assert_eq!(
        errors.lines(),
        ["config.http.readTimeout: zot v2.1.16 does not accept this key (it needs v2.1.17 or later)"]
    );
    let rendered = render(&input, v(17)).expect("v2.1.17 accepts readTimeout");
    assert_eq!(rendered.config["http"]["readTimeout"], "5m");
}

#[test]
fn releases_outside_the_supported_range_are_refused() {
    for version in [v(10), ZotVersion::new(2, 2, 0), ZotVersion::new(1, 0, 0)] {
        let errors = render(&Input::default(), version).expect_err("unsupported");
        assert_eq!(errors.0.len(), 1);
        assert!(matches!(errors.0[0], ZotError::UnsupportedVersion { .. }));
        assert_eq!(errors.reason(), "InvalidSpec");
    }
}

#[test]
fn same_input_gives_the_same_bytes_and_hash() {
    let a = render(&rich_s3(v(20), dynamodb()), v(20)).expect("valid");
    let b = render(&rich_s3(v(20), dynamodb()), v(20)).expect("valid");
    assert_eq!(a.json, b.json);
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.hash, config_hash(a.json.as_bytes()));
    assert_eq!(a.hash.len(), 64);
}

#[test]
fn equivalent_durations_hash_the_same_and_a_content_change_changes_the_hash() {
    let base = rich_local(v(20));
    let mut same = base.clone();
    if let Some(gc) = same.spec.gc.as_mut() {
        gc.delay = Some("120m".into());
    }
    let mut changed = base.clone();
    if let Some(gc) = changed.spec.gc.as_mut() {
        gc.delay = Some("3h".into());
    }
    let h = |i: &Input| render(i, v(20)).expect("valid").hash;
    assert_eq!(h(&base), h(&same), "2h and 120m are the same duration");
    assert_ne!(h(&base), h(&changed));
}

#[test]
fn access_rules_are_rendered_in_a_stable_order_whatever_the_input_order() {
    let rule = |p: &str| RepositoryAccess {
        pattern: p.into(),
        anonymous_policy: vec![AccessAction::Read],
        ..Default::default()
    };
    let mut a = Input::default();
    a.spec.auth = Some(AuthSpec {
        access_control: Some(AccessControlSpec {
            repositories: vec![rule("b/**"), rule("a/**")],
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut b = a.clone();
    if let Some(ac) = b.spec.auth.as_mut().and_then(|a| a.access_control.as_mut()) {
        ac.repositories.reverse();
    }
    assert_eq!(
        render(&a, v(20)).expect("valid").json,
        render(&b, v(20)).expect("valid").json
    );
}

#[test]
fn every_release_accepts_docker_format_pushes_by_default_and_the_spec_can_turn_it_off() {
    for version in ZotVersion::supported() {
        let rendered = render(&Input::default(), version).expect("defaults render");
        assert_eq!(
            rendered.config["http"]["compat"],
            serde_json::json!(["docker2s2"]),
            "{version}"
        );
    }
    let mut off = Input::default();
    off.spec.http = Some(HttpSpec {
        docker_compat: Some(false),
        ..HttpSpec::default()
    });
    let rendered = render(&off, v(20)).expect("valid");
    assert!(rendered.config["http"].get("compat").is_none());
}

#[test]
fn releases_that_cut_requests_at_60s_get_30_minute_timeouts_and_older_ones_get_none() {
    for version in ZotVersion::supported() {
        let rendered = render(&Input::default(), version).expect("defaults render");
        let http = &rendered.config["http"];
        if version >= v(17) {
            assert_eq!(http["readTimeout"], "30m", "{version}");
            assert_eq!(http["writeTimeout"], "30m", "{version}");
        } else {
            assert!(http.get("readTimeout").is_none(), "{version}");
            assert!(http.get("writeTimeout").is_none(), "{version}");
        }
    }
    let mut chosen = Input::default();
    chosen.spec.http = Some(HttpSpec {
        read_timeout: Some("90m".into()),
        write_timeout: Some("0s".into()),
        ..HttpSpec::default()
    });
    let rendered = render(&chosen, v(20)).expect("valid");
    assert_eq!(rendered.config["http"]["readTimeout"], "1h30m");
    assert_eq!(rendered.config["http"]["writeTimeout"], "0s");
}

#[test]
fn a_dynamodb_cache_without_an_endpoint_gets_the_aws_endpoint_of_its_region() {
    for (region, endpoint) in [
        ("eu-west-1", "https://dynamodb.eu-west-1.amazonaws.com"),
        ("cn-north-1", "https://dynamodb.cn-north-1.amazonaws.com.cn"),
    ] {
        let input = rich_s3(v(20), dynamodb_in(region, None));
        let rendered = render(&input, v(20)).expect("valid");
        assert_eq!(
            rendered.config["storage"]["cacheDriver"]["endpoint"],
            endpoint
        );
    }
    let rendered = render(&rich_s3(v(20), dynamodb()), v(20)).expect("valid");
    assert_eq!(
        rendered.config["storage"]["cacheDriver"]["endpoint"], "http://dynamodb:8000",
        "an endpoint given is kept"
    );
}

#[test]
fn a_raw_retention_list_is_kept_when_no_typed_cleanup_setting_would_be_lost() {
    let raw = serde_json::json!({"storage": {"retention": {"policies": [
        {"repositories": ["**"], "deleteUntagged": false, "keepTags": [{"patterns": [".*"]}]}
    ]}}});
    let mut input = Input::default();
    input.spec.untagged = Some(UntaggedSpec {
        delete: None,
        delay: Some("12h".into()),
    });
    input.spec.config = Some(raw);
    let rendered = render(&input, v(20)).expect("no typed setting is replaced");
    let retention = &rendered.config["storage"]["retention"];
    assert_eq!(
        retention["delay"], "12h",
        "the typed delay is an object key and merges"
    );
    assert_eq!(retention["policies"][0]["deleteUntagged"], false);

    let mut typed = input.clone();
    typed.spec.referrers = Some(ReferrersSpec {
        delete_orphans: Some(true),
    });
    let errors = render(&typed, v(20)).expect_err("deleteOrphans would be dropped");
    assert!(
        errors.lines()[0].contains("spec.referrers.deleteOrphans"),
        "{errors}"
    );
}
