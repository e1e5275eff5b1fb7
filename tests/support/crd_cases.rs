//! The rules the CRDs enforce (OpenAPI schema and CEL), as cases: an object and whether the
//! API server accepts it. `tests/crds.rs` judges every case offline (kube-cel and the project's
//! schema check), `tests/operator_apiserver.rs` on the real API server: one list, two judges.

use serde_json::{json, Value};

/// What the API server does with a case's object.
#[derive(Debug, Clone, Copy)]
pub enum Verdict {
    /// Accepted.
    Accepted,
    /// Rejected, with a message that contains this text (a CEL rule's message, or the field).
    Rejected(&'static str),
}

/// One object of one kind and the verdict on it.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case shows, as a sentence.
    pub name: &'static str,
    /// `Registry`, `RetentionPolicy` or `ClusterRetentionPolicy`.
    pub kind: &'static str,
    /// The object's spec.
    pub spec: Value,
    /// What the API server does with it.
    pub verdict: Verdict,
}

impl Case {
    /// The CRD file (under crds/) of the case's kind.
    pub fn crd_file(&self) -> &'static str {
        match self.kind {
            "Registry" => "registries.yaml",
            "RetentionPolicy" => "retentionpolicies.yaml",
            "ClusterRetentionPolicy" => "clusterretentionpolicies.yaml",
            other => panic!("no CRD for kind {other}"),
        }
    }

    /// The whole object, named `name` in `namespace` (ignored for cluster-scoped kinds).
    pub fn object(&self, name: &str, namespace: &str) -> Value {
        let mut metadata = json!({"name": name});
        if self.kind != "ClusterRetentionPolicy" {
            metadata["namespace"] = json!(namespace);
        }
        json!({
            "apiVersion": "registry-operator.dev/v1alpha1",
            "kind": self.kind,
            "metadata": metadata,
            "spec": self.spec,
        })
    }
}

fn case(name: &'static str, kind: &'static str, spec: Value, verdict: Verdict) -> Case {
    Case {
        name,
        kind,
        spec,
        verdict,
    }
}

fn valid_policy() -> Value {
    json!({
        "registryRef": {"name": "main"},
        "mode": "Plan",
        "repositories": {"include": ["team-a/**"]},
        "keep": [{"tags": {"regex": "v\\d+\\.\\d+\\.\\d+"}}, {"mostRecent": 10, "pushedWithin": "720h"}],
    })
}

fn policy_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut spec = valid_policy();
    change(&mut spec);
    spec
}

/// Every case.
pub fn cases() -> Vec<Case> {
    use Verdict::{Accepted, Rejected};
    const REG: &str = "Registry";
    const RP: &str = "RetentionPolicy";
    const CRP: &str = "ClusterRetentionPolicy";
    let s3_with_redis = json!({"bucket": "zot-images", "region": "eu-west-1",
                               "cache": {"redis": {"url": "redis://redis:6379"}}});
    vec![
        case(
            "a managed registry with a version is accepted",
            REG,
            json!({"version": "v2.1.20", "gc": {"interval": "1h", "delay": "30m"}, "dedupe": true}),
            Accepted,
        ),
        case(
            "an external registry with only a url is accepted",
            REG,
            json!({"external": {"url": "https://registry.example.com"}, "aliases": ["r.example.com"]}),
            Accepted,
        ),
        case(
            "an external registry may list fallback credential hosts and trusted token realms",
            REG,
            json!({"external": {"url": "https://registry.example.com",
                                "credentialsFallbackHosts": ["r.example.com", "node.example.com:30500"],
                                "trustedTokenRealms": ["sso.partner.example", "127.0.0.2"]}}),
            Accepted,
        ),
        case(
            "a trusted token realm written as a URL is rejected",
            REG,
            json!({"external": {"url": "https://registry.example.com",
                                "trustedTokenRealms": ["https://sso.partner.example/token"]}}),
            Rejected("trustedTokenRealms"),
        ),
        case(
            "a fallback credential host with a path is rejected",
            REG,
            json!({"external": {"url": "https://registry.example.com",
                                "credentialsFallbackHosts": ["r.example.com/v2"]}}),
            Rejected("credentialsFallbackHosts"),
        ),
        case(
            "an external registry with replicas is rejected",
            REG,
            json!({"external": {"url": "https://r.example.com"}, "replicas": 2}),
            Rejected("only external and aliases may be set"),
        ),
        case(
            "an external registry with gc is rejected",
            REG,
            json!({"external": {"url": "https://r.example.com"}, "gc": {"enabled": true}}),
            Rejected("only external and aliases may be set"),
        ),
        case(
            "a bearer token server with realm, service and certificate is accepted",
            REG,
            json!({"version": "v2.1.20", "auth": {"bearer": {"realm": "https://auth.example/token",
                "service": "zot", "certSecretRef": {"name": "signer"}}}}),
            Accepted,
        ),
        case(
            "a bearer realm without service and certificate is rejected",
            REG,
            json!({"version": "v2.1.20", "auth": {"bearer": {"realm": "https://auth.example/token"}}}),
            Rejected("a token server needs realm, service and certSecretRef together"),
        ),
        case(
            "an empty bearer block is rejected",
            REG,
            json!({"version": "v2.1.20", "auth": {"bearer": {}}}),
            Rejected(
                "set a token server (realm, service, certSecretRef) or at least one oidc issuer",
            ),
        ),
        case(
            "an OpenID Connect provider without an issuer is rejected",
            REG,
            json!({"version": "v2.1.20", "auth": {"openid": {"providers": [{"kind": "gitlab",
                "scopes": ["openid"], "credentialsSecretRef": {"name": "gl"}}]}}}),
            Rejected("an OpenID Connect provider needs its issuer"),
        ),
        case(
            "a github provider needs no issuer",
            REG,
            json!({"version": "v2.1.20", "auth": {"openid": {"providers": [{"kind": "github",
                "scopes": ["read:org"], "credentialsSecretRef": {"name": "gh"}}]}}}),
            Accepted,
        ),
        case(
            "a managed registry without a version is rejected",
            REG,
            json!({"dedupe": true}),
            Rejected("needs spec.version"),
        ),
        case(
            "several replicas without shared storage are rejected",
            REG,
            json!({"version": "v2.1.20", "replicas": 3}),
            Rejected("replicas > 1 needs shared storage"),
        ),
        case(
            "several replicas on s3 with a cache are accepted",
            REG,
            json!({"version": "v2.1.20", "replicas": 3, "storage": {"s3": s3_with_redis}}),
            Accepted,
        ),
        case(
            "a cache that names no backend is rejected",
            REG,
            json!({"version": "v2.1.20", "storage": {"s3": {"bucket": "zot-images", "region": "eu-west-1", "cache": {}}}}),
            Rejected("exactly one of cache.redis and cache.dynamodb"),
        ),
        case(
            "negative replicas are rejected",
            REG,
            json!({"version": "v2.1.20", "replicas": -1}),
            Rejected("spec.replicas"),
        ),
        case(
            "a gc interval in days is rejected",
            REG,
            json!({"version": "v2.1.20", "gc": {"interval": "1d"}}),
            Rejected("spec.gc.interval"),
        ),
        case(
            "a gc time window past midnight's hours is rejected",
            REG,
            json!({"version": "v2.1.20", "gc": {"timeWindow": "25:00-01:00"}}),
            Rejected("spec.gc.timeWindow"),
        ),
        case(
            "the ui without search is rejected",
            REG,
            json!({"version": "v2.1.20", "extensions": {"ui": true}}),
            Rejected("the UI needs the search extension"),
        ),
        case(
            "a periodic sync without content is rejected",
            REG,
            json!({"version": "v2.1.20", "sync": {"registries": [{"urls": ["https://docker.io"], "pollInterval": "6h"}]}}),
            Rejected("onDemand, or periodic with pollInterval"),
        ),
        case(
            "an unknown registry field is rejected",
            REG,
            json!({"version": "v2.1.20", "gcInterval": "1h"}),
            Rejected("spec.gcInterval"),
        ),
        case(
            "a retention policy with keep entries is accepted",
            RP,
            valid_policy(),
            Accepted,
        ),
        case(
            "a policy without a mode is rejected",
            RP,
            policy_with(|s| {
                s.as_object_mut().map(|o| o.remove("mode"));
            }),
            Rejected("mode"),
        ),
        case(
            "an unknown mode is rejected",
            RP,
            policy_with(|s| s["mode"] = json!("Delete")),
            Rejected("Delete"),
        ),
        case(
            "purge with keep entries is rejected",
            RP,
            policy_with(|s| s["purge"] = json!(true)),
            Rejected("keep must be empty"),
        ),
        case(
            "a cluster policy with purge and keep entries is rejected",
            CRP,
            policy_with(|s| {
                s.as_object_mut().map(|o| o.remove("registryRef"));
                s["registrySelector"] = json!({});
                s["purge"] = json!(true);
            }),
            Rejected("keep must be empty"),
        ),
        case(
            "purge without keep entries is accepted",
            RP,
            json!({"registryRef": {"name": "main"}, "mode": "Enforce", "purge": true,
                   "repositories": {"include": ["old-project/**"]}}),
            Accepted,
        ),
        case(
            "an empty keep entry is rejected",
            RP,
            policy_with(|s| s["keep"] = json!([{}])),
            Rejected("a keep entry needs a tags selector or a criterion"),
        ),
        case(
            "a negative most recent count is rejected",
            RP,
            policy_with(|s| s["keep"] = json!([{"mostRecent": -3}])),
            Rejected("mostRecent"),
        ),
        case(
            "a most recent count of zero is rejected",
            RP,
            policy_with(|s| s["keep"] = json!([{"mostRecent": 0}])),
            Rejected("mostRecent"),
        ),
        case(
            "a negative deletion limit is rejected",
            RP,
            policy_with(|s| {
                s["keep"] = json!([{"mostRecent": 1}]);
                s["limits"] = json!({"maxDeletionsPerRun": -1});
            }),
            Rejected("maxDeletionsPerRun"),
        ),
        case(
            "a semver entry without a count is rejected",
            RP,
            policy_with(|s| s["keep"] = json!([{"semver": {"includePrereleases": true}}])),
            Rejected("semver needs latestPerMajor or latestPerMinor"),
        ),
        case(
            "a policy without included repositories is rejected",
            RP,
            policy_with(|s| s["repositories"] = json!({"include": []})),
            Rejected("include"),
        ),
        case(
            "a cluster policy with a registry selector is accepted",
            CRP,
            json!({"registrySelector": {"matchLabels": {"tier": "prod"}}, "mode": "Plan",
                   "repositories": {"include": ["**"]}, "keep": [{"mostRecent": 5}]}),
            Accepted,
        ),
        case(
            "a cluster policy without a registry selector is rejected",
            CRP,
            json!({"mode": "Plan", "repositories": {"include": ["**"]}, "keep": [{"mostRecent": 5}]}),
            Rejected("registrySelector"),
        ),
    ]
}
