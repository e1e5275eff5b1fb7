//! Invalid Registry manifests are rejected before anything is rendered, each with its own
//! one-line reason naming the field or zot config key at fault.

use registry_operator::cli::render::render_manifest;

/// A Registry manifest with `spec` lines appended (indented by two spaces) to a valid header.
fn manifest(name: &str, spec: &str) -> String {
    let mut text = format!(
        "apiVersion: registry-operator.dev/v1alpha1\nkind: Registry\nmetadata:\n  name: {name}\n  namespace: test\nspec:\n"
    );
    for line in spec.lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

const S3_REDIS: &str = "storage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n    cache:\n      redis:\n        url: redis://redis:6379\n";

/// (case, spec body, the expected problem line, or a unique part of it)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let v20 = "version: v2.1.20\n";
    let with = |body: &str| format!("{v20}{body}");
    vec![
        ("negative gc delay", with("gc:\n  delay: -1h\n"), "storage.gcDelay: must not be negative, got \"-1h\""),
        ("day unit in gc interval", with("gc:\n  interval: 1d\n"), "storage.gcInterval: \"1d\" is not a Go duration (e.g. 90s, 1h30m, 720h)"),
        ("zero gc delay", with("gc:\n  delay: 0s\n"), "storage.gcDelay: must be more than 0s: with no delay GC deletes the blobs of pushes still in progress"),
        ("gc interval with gc off", with("gc:\n  enabled: false\n  interval: 1h\n"), "storage.gcInterval: is set while gc is disabled; zot would ignore it (enable gc or remove it)"),
        ("untagged cleanup with gc off", with("gc:\n  enabled: false\nuntagged:\n  delete: true\n"), "storage.retention: untagged and referrer cleanup only run inside garbage collection, which is disabled"),
        ("gc time window on v2.1.18", "version: v2.1.18\ngc:\n  timeWindow: \"01:00-05:00\"\n".to_string(), "gcTimeWindow (spec.gc.timeWindow) needs zot v2.1.19 or later, but this registry runs v2.1.18"),
        ("empty gc time window", with("gc:\n  timeWindow: \"03:00-03:00\"\n"), "storage.gcTimeWindow: \"03:00-03:00\" starts and ends at the same time"),
        ("negative untagged delay", with("untagged:\n  delay: -5m\n"), "storage.retention.delay: must not be negative, got \"-5m\""),
        ("replicas without shared storage", with("replicas: 3\n"), "spec.replicas: more than one replica needs shared storage: set storage.s3 with storage.s3.cache"),
        ("s3 dedupe without cache", with("storage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n"), "storage.dedupe: dedupe on S3 needs a remote cache (storage.s3.cache); without one a lost local cache can destroy blobs, so add a cache or set dedupe: false"),
        ("invalid bucket name", with("dedupe: false\nstorage:\n  s3:\n    bucket: Bad_Bucket\n    region: us-east-1\n"), "storage.storageDriver.bucket: \"Bad_Bucket\" is not an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)"),
        ("volume size with s3", with(&format!("{S3_REDIS}  size: 10Gi\n")), "spec.storage: size and storageClassName size a volume; with s3 the images live in the bucket, so leave them unset"),
        ("two caches", with("storage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n    cache:\n      redis:\n        url: redis://redis:6379\n      dynamodb:\n        region: us-east-1\n"), "spec.storage.s3.cache: set exactly one of redis and dynamodb"),
        ("redis url with http scheme", with("storage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n    cache:\n      redis:\n        url: http://redis:6379\n"), "storage.cacheDriver.url: \"http://redis:6379\" is not a redis:// or rediss:// URL"),
        ("s3 endpoint that is not a URL", with("dedupe: false\nstorage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n    endpoint: minio:9000\n"), "storage.storageDriver.regionendpoint: \"minio:9000\" is not an http(s) URL"),
        ("access control without authentication", with("auth:\n  accessControl:\n    repositories:\n      - pattern: \"**\"\n        defaultPolicy: [read]\n"), "http.accessControl: grants rights to users but zot v2.1.20 counts no authentication in this config"),
        ("access control with an incomplete bearer block", with("auth:\n  accessControl:\n    repositories:\n      - pattern: \"**\"\n        defaultPolicy: [read]\nconfig:\n  http:\n    auth:\n      bearer:\n        realm: https://auth.example/token\n"), "http.accessControl: grants rights to users but zot v2.1.20 counts no authentication in this config (it counts htpasswd path"),
        ("access control with an openid provider zot does not know", with("auth:\n  htpasswdSecretRef: {name: h}\nconfig:\n  http:\n    auth:\n      openid:\n        providers:\n          keycloak:\n            clientid: zot\n            issuer: https://sso.example\n            scopes: [openid]\n"), "http.auth.openid.providers.keycloak: \"keycloak\" is not a provider zot supports (google, gitlab, oidc, github)"),
        ("openid provider without scopes", with("config:\n  http:\n    auth:\n      openid:\n        providers:\n          oidc:\n            clientid: zot\n            issuer: https://sso.example\n"), "http.auth.openid.providers.oidc.scopes: is required for the oidc provider"),
        ("bearer with both cert and aws secrets manager", with("config:\n  http:\n    auth:\n      bearer:\n        realm: https://auth.example/token\n        service: zot\n        cert: /c.pem\n        awsSecretsManager:\n          region: eu-west-1\n          secretName: zot-jwt\n"), "http.auth.bearer: cannot use both cert and awsSecretsManager"),
        ("mtls block without a client CA", with("tls:\n  name: t\nconfig:\n  http:\n    auth:\n      mtls:\n        identityAttributes: [SerialNumber]\n"), "http.auth.mtls: needs http.tls cert, key and cacert"),
        ("periodic sync from docker hub", with("sync:\n  registries:\n    - urls: [\"https://registry-1.docker.io\"]\n      onDemand: true\n      pollInterval: 6h\n      content:\n        - prefix: \"library/**\"\n"), "extensions.sync.registries[0].pollInterval: https://registry-1.docker.io does not serve the repository catalog (/v2/_catalog) that zot's periodic sync lists, so it would never sync: remove pollInterval and use onDemand: true"),
        ("raw retention policies beside typed untagged cleanup", with("untagged:\n  delete: true\nconfig:\n  storage:\n    retention:\n      policies:\n        - repositories: [\"team-a/**\"]\n          keepTags: [{patterns: [\".*\"]}]\n"), "config.storage.retention.policies: replaces the retention policy the operator renders from spec.untagged.delete, whose settings would be lost"),
        ("dynamodb cache without an endpoint", with("storage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n    cache:\n      dynamodb:\n        region: us-east-1\nconfig:\n  storage:\n    cacheDriver:\n      endpoint: null\n"), "storage.cacheDriver.endpoint: is required with a dynamodb cache: zot exits at start without it (for AWS: https://dynamodb.<region>.amazonaws.com)"),
        ("read timeout on a release without timeouts", "version: v2.1.16\nhttp:\n  readTimeout: 10m\n".to_string(), "readTimeout (spec.http.readTimeout) needs zot v2.1.17 or later, but this registry runs v2.1.16"),
        ("sync request concurrency of zero", "version: v2.1.21\nsync:\n  registries:\n    - urls: [\"https://mirror.example\"]\n      onDemand: true\nconfig:\n  extensions:\n    sync:\n      registries:\n        - urls: [\"https://mirror.example\"]\n          onDemand: true\n          reqConcurrent: 0\n".to_string(), "extensions.sync.registries[0].reqConcurrent: must be a whole number greater than 0"),
        ("manifest check interval without on-demand sync", "version: v2.1.21\nconfig:\n  extensions:\n    sync:\n      enable: true\n      registries:\n        - urls: [\"https://mirror.example\"]\n          pollInterval: 1h\n          content: [{prefix: \"a/**\"}]\n          manifestCheckInterval: 5m\n".to_string(), "extensions.sync.registries[0].manifestCheckInterval: only throttles on-demand sync: it needs onDemand: true"),
        ("oauth2 credential helper without a token url", with("config:\n  extensions:\n    sync:\n      enable: true\n      registries:\n        - urls: [\"https://mirror.example\"]\n          onDemand: true\n          credentialHelper: oauth2\n          oauth2CredentialHelper:\n            assertionFile: /var/run/token\n"), "extensions.sync.registries[0].oauth2CredentialHelper.tokenURL: is required"),
        ("upper-case access glob", with("auth:\n  accessControl:\n    repositories:\n      - pattern: \"Team-A/**\"\n        anonymousPolicy: [read]\n"), "http.accessControl.repositories[0]: glob \"Team-A/**\" must be lower-case: zot lower-cases it and repository names are lower-case"),
        ("access glob that does not compile", with("auth:\n  accessControl:\n    repositories:\n      - pattern: \"team-[a/**\"\n        anonymousPolicy: [read]\n"), "http.accessControl.repositories[\"team-[a/**\"]: glob \"team-[a/**\" does not compile: unclosed character class; missing ']'"),
        ("duplicate access glob", with("auth:\n  accessControl:\n    repositories:\n      - pattern: \"a/**\"\n        anonymousPolicy: [read]\n      - pattern: \"a/**\"\n        anonymousPolicy: [read]\n"), "http.accessControl.repositories[1]: glob \"a/**\" is listed twice"),
        ("fail delay out of range", with("auth:\n  htpasswdSecretRef: {name: h}\n  failDelaySeconds: 100\n"), "http.auth.failDelay: must be between 0 and 60 seconds, got 100"),
        ("ui without search", with("extensions:\n  ui: true\n"), "extensions.ui: the UI needs the search extension"),
        ("sync retries without delay", with("sync:\n  registries:\n    - urls: [\"https://mirror.example\"]\n      onDemand: true\n      maxRetries: 3\n"), "extensions.sync.registries[0].maxRetries: needs retryDelay"),
        ("sync that mirrors nothing", with("sync:\n  registries:\n    - urls: [\"https://mirror.example\"]\n"), "extensions.sync.registries[0]: mirrors nothing: set onDemand: true, or pollInterval with at least one content entry"),
        ("periodic sync without content", with("sync:\n  registries:\n    - urls: [\"https://mirror.example\"]\n      onDemand: true\n      pollInterval: 1h\n"), "extensions.sync.registries[0].pollInterval: periodic sync needs at least one content entry"),
        ("sync tag regex that does not compile", with("sync:\n  registries:\n    - urls: [\"https://mirror.example\"]\n      onDemand: true\n      content:\n        - prefix: \"library/**\"\n          tagsRegex: \"([a-z\"\n"), "extensions.sync.registries[0].content[0].tags.regex: regular expression \"([a-z\" does not compile"),
        ("sync upstream that is not http", with("sync:\n  registries:\n    - urls: [\"ftp://mirror.example\"]\n      onDemand: true\n"), "extensions.sync.registries[0].urls: \"ftp://mirror.example\" is not an http(s) URL"),
        ("scrub more often than every 2h", with("extensions:\n  scrub:\n    interval: 30m\n"), "extensions.scrub.interval: must be at least 2h (zot raises shorter intervals), got \"30m\""),
        ("raw config key zot does not know", with("config:\n  extensions:\n    userprefs: {}\n"), "config.extensions.userprefs: zot v2.1.20 does not accept this key"),
        ("raw config key of a later release", with("config:\n  storage:\n    hydrateBlobOnRead: true\n"), "config.storage.hydrateBlobOnRead: zot v2.1.20 does not accept this key (it needs v2.1.21 or later)"),
        ("raw config with an invalid log level", with("config:\n  log:\n    level: verbose\n"), "log.level: \"verbose\" is not a zot log level"),
        ("raw config metrics path /v2", with("extensions:\n  metrics: true\nconfig:\n  extensions:\n    metrics:\n      prometheus:\n        path: /v2\n"), "extensions.metrics.prometheus.path: \"/v2\" must be a clean absolute path other than / and /v2"),
        ("raw config cluster hash key override", with(&format!("replicas: 3\n{S3_REDIS}config:\n  cluster:\n    hashKey: short\n")), "config.cluster.hashKey: is set by the operator (derived from the Registry's namespace and name); it cannot be overridden"),
        ("raw config gcDelay as a number", with("config:\n  storage:\n    gcDelay: 3600\n"), "storage.gcDelay: must be a Go duration string such as \"1h\"; zot reads a bare number as nanoseconds"),
        ("raw config that moves the listener", with("config:\n  http:\n    port: \"8080\"\n"), "config.http.port: is set by the operator (probes and Services target port 5000); it cannot be overridden"),
        ("raw config that replaces the cluster members", with(&format!("replicas: 3\n{S3_REDIS}config:\n  cluster:\n    members: [\"a:5000\"]\n")), "config.cluster.members: is set by the operator (the members are the StatefulSet's pods); it cannot be overridden"),
        ("ui logins across replicas without redis", with("replicas: 2\nauth:\n  htpasswdSecretRef: {name: h}\nextensions:\n  search: true\n  ui: true\nstorage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n    cache:\n      dynamodb:\n        region: us-east-1\n"), "http.auth.sessionDriver: UI and OpenID logins across several replicas need shared sessions, which need a redis cache"),
        ("tls in a scale-out cluster", with(&format!("replicas: 2\ntls:\n  name: t\n{S3_REDIS}")), "spec.tls: TLS with more than one replica is not supported yet: members would need the CA that signs their pod names"),
        ("mtls without tls", with("auth:\n  mtls:\n    clientCaSecretRef: {name: clients}\n"), "spec.auth.mtls: client certificates are only presented over HTTPS: set spec.tls"),
        ("mtls identity on v2.1.11", "version: v2.1.11\ntls: {name: t}\nauth:\n  mtls:\n    clientCaSecretRef: {name: clients}\n    identityAttributes: [URI]\n".to_string(), "client-certificate identity (spec.auth.mtls.identityAttributes, uriSanPattern) needs zot v2.1.12 or later, but this registry runs v2.1.11"),
        ("mtls san pattern without the uri attribute", with("tls: {name: t}\nauth:\n  mtls:\n    clientCaSecretRef: {name: clients}\n    identityAttributes: [CommonName]\n    uriSanPattern: \"^spiffe://(.*)$\"\n"), "http.auth.mtls.uriSanPattern: only applies with the URI/URL identity attribute"),
        ("access control counting only mtls on v2.1.11", "version: v2.1.11\ntls: {name: t}\nauth:\n  mtls:\n    clientCaSecretRef: {name: clients}\n  accessControl:\n    repositories:\n      - pattern: \"**\"\n        defaultPolicy: [read]\n".to_string(), "http.accessControl: grants rights to users but zot v2.1.11 counts no authentication in this config"),
        ("bearer oidc on v2.1.13", "version: v2.1.13\nauth:\n  bearer:\n    oidc:\n      - issuer: https://idp.example\n        audiences: [zot]\n".to_string(), "bearer OIDC workload identity (spec.auth.bearer.oidc) needs zot v2.1.14 or later, but this registry runs v2.1.13"),
        ("bearer oidc ca on v2.1.14", "version: v2.1.14\nauth:\n  bearer:\n    oidc:\n      - issuer: https://idp.example\n        audiences: [zot]\n        caSecretRef: {name: idp-ca}\n".to_string(), "a CA for a bearer OIDC issuer (spec.auth.bearer.oidc[].caSecretRef) needs zot v2.1.15 or later, but this registry runs v2.1.14"),
        ("bearer realm without service and certificate", with("auth:\n  bearer:\n    realm: https://auth.example/token\n"), "http.auth.bearer: a token server needs realm, service and the certificate (certSecretRef) together"),
        ("bearer oidc only with the operator's password account", with("auth:\n  operatorCredentialsSecretRef: {name: robot}\n  bearer:\n    oidc:\n      - issuer: https://idp.example\n        audiences: [zot]\n"), "spec.auth.operatorCredentialsSecretRef: with bearer oidc and no token server zot accepts only OIDC tokens, so the operator's account cannot sign in"),
        ("api keys without a sign-in method", with("auth:\n  apiKeys: true\n"), "http.auth.apikey: API keys are created by a signed-in user: add htpasswd, LDAP or OpenID sign-in"),
        ("api keys on s3 without a cache", with("dedupe: false\nstorage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\nauth:\n  htpasswdSecretRef: {name: h}\n  apiKeys: true\n"), "http.auth.apikey: API keys live in zot's metadata database, which with S3 and no cache is on the pod's scratch volume: every restart would revoke them, so add storage.s3.cache"),
        ("ldap ca without tls", with("auth:\n  ldap:\n    address: ldap.example\n    tls: None\n    caSecretRef: {name: ldap-ca}\n    baseDN: dc=example\n    userAttribute: uid\n"), "http.auth.ldap.caCert: a CA verifies a TLS connection, but tls is None: use LDAPS or StartTLS"),
        ("ldap tls mode outside the enum", with("auth:\n  ldap:\n    address: ldap.example\n    tls: SSL\n    baseDN: dc=example\n    userAttribute: uid\n"), "spec.auth.ldap.tls: \"SSL\" is not one of LDAPS, StartTLS, None"),
        ("raw ldap bind password inline", with("auth:\n  ldap:\n    address: ldap.example\n    baseDN: dc=example\n    userAttribute: uid\nconfig:\n  http:\n    auth:\n      ldap:\n        bindPassword: hunter2\n"), "config.http.auth.ldap.bindPassword: zot v2.1.20 does not accept this key"),
        ("raw ldap credentials file", with("auth:\n  ldap:\n    address: ldap.example\n    baseDN: dc=example\n    userAttribute: uid\nconfig:\n  http:\n    auth:\n      ldap:\n        credentialsFile: /etc/ldap.json\n"), "config.http.auth.ldap.credentialsFile: is set by the operator (set spec.auth.ldap.credentialsSecretRef; the file is mounted from its Secret); it cannot be overridden"),
        ("raw openid client secret inline", with("auth:\n  htpasswdSecretRef: {name: h}\nconfig:\n  http:\n    auth:\n      openid:\n        providers:\n          github:\n            clientid: zot\n            clientsecret: hunter2\n            scopes: [\"read:org\"]\n"), "config.http.auth.openid.providers.github.clientsecret: would put an OpenID client secret into the ConfigMap or point at a file the pod lacks: set spec.auth.openid.providers[].credentialsSecretRef"),
        ("openid provider listed twice", with("auth:\n  openid:\n    providers:\n      - {kind: oidc, issuer: \"https://a.example\", scopes: [openid], credentialsSecretRef: {name: a}}\n      - {kind: oidc, issuer: \"https://b.example\", scopes: [openid], credentialsSecretRef: {name: b}}\n"), "http.auth.openid.providers.oidc: is listed twice: zot takes one provider of each kind"),
        ("openid provider without an issuer", with("auth:\n  openid:\n    providers:\n      - {kind: gitlab, scopes: [openid], credentialsSecretRef: {name: a}}\n"), "http.auth.openid.providers.gitlab.issuer: is required for an OpenID Connect provider"),
        ("openid groups claim on v2.1.16", "version: v2.1.16\nauth:\n  openid:\n    providers:\n      - {kind: oidc, issuer: \"https://a.example\", scopes: [openid], credentialsSecretRef: {name: a}, groupsClaim: groups}\n".to_string(), "an OpenID groups claim (spec.auth.openid.providers[].groupsClaim) needs zot v2.1.17 or later, but this registry runs v2.1.16"),
        ("fail delay with only bearer", with("auth:\n  failDelaySeconds: 2\n  bearer:\n    realm: https://auth.example/token\n    service: zot\n    certSecretRef: {name: signer}\n"), "http.auth.failDelay: only applies to password logins: configure htpasswd or LDAP authentication"),
        ("raw config that is not an object", with("config: \"gc: true\"\n"), "spec.config: expected object, got string"),
        ("unknown spec field", with("gcc:\n  enabled: true\n"), "spec.gcc: unknown field"),
        ("field of the wrong type", with("replicas: three\n"), "spec.replicas: expected integer, got string"),
        ("log level outside the enum", with("log:\n  level: verbose\n"), "spec.log.level: \"verbose\" is not one of debug, info, warn, error"),
        ("unsupported zot release", "version: v2.0.0\n".to_string(), "zot v2.0.0 is not supported: choose a release from v2.1.11 to v2.1.21"),
        ("missing zot release", "dedupe: true\n".to_string(), "spec.version: is required for a managed registry (the zot release, e.g. v2.1.20)"),
        ("external registry", "external:\n  url: https://registry.example\n".to_string(), "spec.external: declares a registry the operator does not deploy, so there is no zot config to render"),
        ("storage size that is not a quantity", with("storage:\n  size: 10GB\n"), "spec.storage.size: \"10GB\" is not a quantity such as 50Gi"),
        ("service port out of range", with("service:\n  port: 70000\n"), "spec.service.port: must be 1-65535, got 70000"),
        ("negative replicas", with("replicas: -1\n"), "spec.replicas: must not be negative, got -1"),
    ]
}

#[test]
fn every_invalid_registry_is_rejected_with_its_own_one_line_reason() {
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut seen = std::collections::BTreeSet::new();
    for (case, spec, expected) in &cases {
        assert!(
            seen.insert(*expected),
            "{case}: message shared with another case"
        );
        let problems = match render_manifest(&manifest("reg", spec), None) {
            Ok(_) => panic!("{case}: rendered although invalid"),
            Err(problems) => problems,
        };
        for p in &problems {
            assert!(!p.contains('\n'), "{case}: multi-line problem {p:?}");
        }
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{case}: expected a problem starting with {expected:?}, got {problems:#?}"
        );
    }
}

#[test]
fn an_invalid_metadata_name_is_rejected() {
    let problems = render_manifest(&manifest("1registry", "version: v2.1.20\n"), None)
        .err()
        .unwrap_or_default();
    assert_eq!(
        problems,
        ["metadata.name: \"1registry\" must be a DNS label (lower-case letters, digits, '-', starting with a letter) of at most 52 characters"]
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let spec = "version: v2.1.20\ngc:\n  delay: -1h\n  interval: 1d\nextensions:\n  ui: true\nconfig:\n  extensions:\n    userprefs: {}\n";
    let problems = render_manifest(&manifest("reg", spec), None)
        .err()
        .unwrap_or_default();
    assert_eq!(
        problems,
        [
            "storage.gcInterval: \"1d\" is not a Go duration (e.g. 90s, 1h30m, 720h)",
            "storage.gcDelay: must not be negative, got \"-1h\"",
            "config.extensions.userprefs: zot v2.1.20 does not accept this key",
            "extensions.ui: the UI needs the search extension",
        ]
    );
}

#[test]
fn bad_yaml_is_one_problem() {
    let problems = render_manifest("spec: [\n", None).err().unwrap_or_default();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("not a valid YAML document: "),
        "{problems:?}"
    );
}

#[test]
fn a_name_that_would_clash_with_another_registrys_headless_service_is_rejected() {
    let problems = render_manifest(&manifest("main-headless", "version: v2.1.20\n"), None)
        .err()
        .unwrap_or_default();
    assert_eq!(
        problems,
        ["metadata.name: \"main-headless\" must not end in -headless: the headless Service of the Registry named \"main\" has that name"]
    );
}

#[test]
fn a_secret_in_the_config_is_refused_by_key_with_the_secret_field_to_use_and_never_quoted() {
    let v20 = "version: v2.1.20\n";
    let cases = [
        (
            "s3 secret key in the raw config",
            format!("{v20}{S3_REDIS}config:\n  storage:\n    storageDriver:\n      secretkey: hunter2\n"),
            "config.storage.storageDriver.secretkey: is a secret, which would be stored in the ConfigMap in plain text: set spec.storage.s3.credentialsSecretRef",
        ),
        (
            "s3 access key in the raw config, any case",
            format!("{v20}{S3_REDIS}config:\n  storage:\n    storageDriver:\n      accessKey: hunter2\n"),
            "config.storage.storageDriver.accessKey: is a secret, which would be stored in the ConfigMap in plain text: set spec.storage.s3.credentialsSecretRef",
        ),
        (
            "redis cache password in the raw config",
            format!("{v20}{S3_REDIS}config:\n  storage:\n    cacheDriver:\n      password: hunter2\n"),
            "config.storage.cacheDriver.password: is a secret, which would be stored in the ConfigMap in plain text: no spec field takes a cache or session store password from a Secret yet",
        ),
        (
            "ldap bind password in the raw config",
            format!("{v20}config:\n  http:\n    auth:\n      ldap:\n        bindPassword: hunter2\n"),
            "config.http.auth.ldap.bindPassword: is a secret, which would be stored in the ConfigMap in plain text: set spec.auth.ldap.credentialsSecretRef",
        ),
        (
            "sync upstream URL with a password in the raw config",
            format!("{v20}config:\n  extensions:\n    sync:\n      registries:\n        - urls: [\"https://mirror:hunter2@mirror.example\"]\n          onDemand: true\n"),
            "config.extensions.sync.registries[0].urls[0]: is a URL with a password, which would be stored in the ConfigMap in plain text: set spec.sync.credentialsSecretRef",
        ),
        (
            "redis cache URL with a password in the typed field",
            format!("{v20}storage:\n  s3:\n    bucket: zot-images\n    region: us-east-1\n    cache:\n      redis:\n        url: redis://:hunter2@redis:6379\n"),
            "storage.cacheDriver.url: is a URL with a password, which would be stored in the ConfigMap in plain text",
        ),
    ];
    for (case, spec, expected) in &cases {
        let problems = match render_manifest(&manifest("reg", spec), None) {
            Ok(_) => panic!("{case}: rendered although the config carries a secret"),
            Err(problems) => problems,
        };
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{case}: expected a problem starting with {expected:?}, got {problems:#?}"
        );
        assert!(
            problems.iter().all(|p| !p.contains("hunter2")),
            "{case}: a problem quotes the secret: {problems:#?}"
        );
    }
    // The same settings without a secret value render.
    let fine =
        format!("{v20}{S3_REDIS}config:\n  storage:\n    storageDriver:\n      secure: true\n");
    assert!(render_manifest(&manifest("reg", &fine), None).is_ok());
}
