//! Tests of zot's verify rules.

use super::*;
use serde_json::json;

const V20: ZotVersion = ZotVersion::new(2, 1, 20);

fn problems(config: Value) -> Vec<String> {
    verify(&config, V20).lines()
}

#[test]
fn accepts_a_plain_local_config() {
    assert!(problems(
        json!({"storage": {"rootDirectory": "/r"}, "http": {"address": "0.0.0.0", "port": "5000"}})
    )
    .is_empty());
}

#[test]
fn rejects_dedupe_on_s3_without_a_cache() {
    let p = problems(json!({"storage": {"rootDirectory": "/r", "storageDriver": {"name": "s3"}}}));
    assert_eq!(p, ["storage.cacheDriver: dedupe with cloud storage and remoteCache needs a remote cache (cacheDriver)"]);
}

#[test]
fn gates_storage_drivers_by_version() {
    let p = verify(
        &json!({"storage": {"rootDirectory": "/r", "dedupe": false, "storageDriver": {"name": "azure"}}}),
        ZotVersion::new(2, 1, 17),
    )
    .lines();
    assert_eq!(
        p,
        ["the azure storage driver needs zot v2.1.18 or later, but this registry runs v2.1.17"]
    );
}

#[test]
fn rejects_overlapping_local_roots_and_subpath_gc_without_delay() {
    let p = problems(
        json!({"storage": {"rootDirectory": "/r", "subPaths": {"/a": {"rootDirectory": "/r/a", "gc": true, "gcDelay": "0s"}}}}),
    );
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn rejects_access_control_without_authentication_unless_anonymous_only() {
    let anon =
        json!({"http": {"accessControl": {"repositories": {"**": {"anonymousPolicy": ["read"]}}}}});
    assert!(problems(anon).is_empty());
    let users =
        json!({"http": {"accessControl": {"repositories": {"**": {"defaultPolicy": ["read"]}}}}});
    assert_eq!(problems(users).len(), 1);
}

fn users_granted(auth: Value, tls: Value) -> Value {
    json!({"http": {"tls": tls, "auth": auth, "accessControl": {"repositories": {"**": {"defaultPolicy": ["read"]}}}}})
}

#[test]
fn tls_with_a_client_ca_counts_as_authentication_from_v2_1_12_without_an_mtls_block() {
    let config = users_granted(
        json!({}),
        json!({"cert": "/c", "key": "/k", "cacert": "/ca"}),
    );
    assert!(verify(&config, ZotVersion::new(2, 1, 12)).is_empty());
    assert_eq!(verify(&config, V20).lines(), Vec::<String>::new());
    let old = verify(&config, ZotVersion::new(2, 1, 11)).lines();
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0].starts_with(
        "http.accessControl: grants rights to users but zot v2.1.11 counts no authentication"
    ));
    let no_ca = users_granted(json!({}), json!({"cert": "/c", "key": "/k"}));
    assert_eq!(verify(&no_ca, V20).lines().len(), 1);
}

#[test]
fn only_a_complete_bearer_block_counts_as_authentication_and_only_from_v2_1_14() {
    let tls = json!({"cert": "/c", "key": "/k"});
    let incomplete = users_granted(
        json!({"bearer": {"realm": "https://t/token", "service": "zot"}}),
        tls.clone(),
    );
    assert_eq!(verify(&incomplete, V20).lines().len(), 1);
    let complete = users_granted(
        json!({"bearer": {"realm": "https://t/token", "service": "zot", "cert": "/b.pem"}}),
        tls.clone(),
    );
    assert!(verify(&complete, V20).is_empty());
    assert_eq!(
        verify(&complete, ZotVersion::new(2, 1, 13)).lines().len(),
        1
    );
    let oidc = users_granted(
        json!({"bearer": {"oidc": [{"issuer": "https://idp", "audiences": ["zot"]}]}}),
        tls.clone(),
    );
    assert!(verify(&oidc, V20).is_empty());
    let oidc_no_audience = users_granted(
        json!({"bearer": {"oidc": [{"issuer": "https://idp"}]}}),
        tls,
    );
    assert_eq!(verify(&oidc_no_audience, V20).lines().len(), 1);
}

#[test]
fn only_an_openid_provider_zot_knows_counts_as_authentication() {
    let known = users_granted(
        json!({"openid": {"providers": {"github": {"clientid": "x", "scopes": ["read:org"]}}}}),
        Value::Null,
    );
    assert!(verify(&known, V20).is_empty());
    let unknown = users_granted(
        json!({"openid": {"providers": {"keycloak": {"clientid": "x", "issuer": "https://k", "scopes": ["openid"]}}}}),
        Value::Null,
    );
    let p = verify(&unknown, V20).lines();
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn anonymous_metrics_reads_alone_need_no_authentication_from_v2_1_18() {
    let config = json!({"http": {"accessControl": {"metrics": {"anonymousPolicy": ["read"]}}}});
    assert!(verify(&config, ZotVersion::new(2, 1, 18)).is_empty());
    assert_eq!(verify(&config, ZotVersion::new(2, 1, 17)).lines().len(), 1);
}

#[test]
fn mtls_identity_rules_are_zots() {
    let tls = json!({"cert": "/c", "key": "/k", "cacert": "/ca"});
    let check = |mtls: Value| {
        verify(
            &json!({"http": {"tls": tls.clone(), "auth": {"mtls": mtls}}}),
            V20,
        )
        .lines()
    };
    assert!(
        check(json!({"identityAttributes": ["CN", "uri"], "uriSanPattern": "^spiffe://"}))
            .is_empty()
    );
    assert_eq!(
        check(json!({"identityAttributes": ["SerialNumber"]})).len(),
        1
    );
    assert_eq!(
        check(json!({"identityAttributes": ["CN"], "uriSanIndex": 1})),
        ["http.auth.mtls.uriSanIndex: only applies with the URI/URL identity attribute"]
    );
    assert_eq!(
        check(json!({"identityAttributes": ["URI"], "uriSanPattern": "(["})).len(),
        1
    );
}

/// Configs run through a real `zot verify` (v2.1.20 built from source): zot's exit status
/// and this module's verdict agree on each.
#[test]
fn agrees_with_a_real_zot_v2_1_20_verify_on_authentication_and_identity_configs() {
    let cases: &[(&str, bool, &str)] = &[
        (
            "ac-bearer-complete",
            true,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"realm":"https://t/token","service":"zot","cert":"/x/b.pem"}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
        ),
        (
            "ac-bearer-oidc-no-aud",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"oidc":[{"issuer":"https://idp"}]}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
        ),
        (
            "ac-bearer-oidc",
            true,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"oidc":[{"issuer":"https://idp","audiences":["zot"]}]}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
        ),
        (
            "ac-bearer-realm-only",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"realm":"https://t/token"}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
        ),
        (
            "ac-mtls-tls-ca",
            true,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k","cacert":"/x/ca"},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
        ),
        (
            "ac-tls-no-ca",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k"},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
        ),
        (
            "bearer-cert-and-asm",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"bearer":{"realm":"https://t","service":"z","cert":"/x/b","awsSecretsManager":{"region":"eu-west-1","secretName":"s"}}}}}"#,
        ),
        (
            "metrics-anon-only",
            true,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","accessControl":{"metrics":{"anonymousPolicy":["read"]}}}}"#,
        ),
        (
            "mtls-bad-attr",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k","cacert":"/x/ca"},"auth":{"mtls":{"identityAttributes":["SerialNumber"]}}}}"#,
        ),
        (
            "mtls-no-ca",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k"},"auth":{"mtls":{"identityAttributes":["CN"]}}}}"#,
        ),
        (
            "mtls-san-index-no-uri",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","tls":{"cert":"/x/c","key":"/x/k","cacert":"/x/ca"},"auth":{"mtls":{"identityAttributes":["CN"],"uriSanIndex":1}}}}"#,
        ),
        (
            "openid-github-ok",
            true,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"openid":{"providers":{"github":{"clientid":"x","scopes":["read:org"]}}}},"accessControl":{"repositories":{"**":{"defaultPolicy":["read"]}}}}}"#,
        ),
        (
            "openid-keycloak",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"openid":{"providers":{"keycloak":{"clientid":"x","issuer":"https://k","scopes":["openid"]}}}}}}"#,
        ),
        (
            "openid-oidc-no-scopes",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","auth":{"openid":{"providers":{"oidc":{"clientid":"x","issuer":"https://k"}}}}}}"#,
        ),
        (
            "sync-oauth2-no-tokenurl",
            false,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150"},"extensions":{"sync":{"enable":true,"registries":[{"urls":["https://m.example"],"onDemand":true,"credentialHelper":"oauth2","oauth2CredentialHelper":{"assertionFile":"/t"}}]}}}"#,
        ),
        (
            "timeouts-zero",
            true,
            r#"{"storage":{"rootDirectory":"/var/lib/registry"},"http":{"address":"127.0.0.1","port":"5150","readTimeout":"0s","writeTimeout":"0s"}}"#,
        ),
    ];
    for (name, zot_accepts, text) in cases {
        let config: Value = serde_json::from_str(text).expect("case is JSON");
        let problems = verify(&config, V20).lines();
        assert_eq!(problems.is_empty(), *zot_accepts, "{name}: {problems:?}");
    }
}

#[test]
fn rejects_a_cluster_without_members_or_with_a_hash_key_not_16_characters() {
    assert_eq!(
        problems(json!({"cluster": {"members": [], "hashKey": "short"}})),
        [
            "cluster.members: needs at least one member",
            "cluster.hashKey: must be exactly 16 characters"
        ]
    );
    assert!(
        problems(json!({"cluster": {"members": ["a:5000"], "hashKey": "0123456789abcdef"}}))
            .is_empty()
    );
}

#[test]
fn rejects_bare_number_durations_and_negative_counts() {
    let p = problems(
        json!({"storage": {"gcDelay": 3600, "retention": {"policies": [{"repositories": ["**"], "keepTags": [{"mostRecentlyPushedCount": -1}]}]}}}),
    );
    assert_eq!(p.len(), 2, "{p:?}");
}
