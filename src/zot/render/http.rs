//! The `http` block: listener, TLS, the authentication methods and access control.

use std::collections::BTreeMap;

use super::{check_http_url, is_http_url};
use super::{duration, DOCKER_COMPAT, HTTP_TIMEOUTS_SINCE};
use crate::api::zot::{
    AccessAction, AccessControlSpec, AuthSpec, BearerSpec, HttpSpec, LdapSpec, LdapTls, MtlsSpec,
    OpenIdSpec, ZotSpec,
};
use crate::zot::config::*;
use crate::zot::error::{RenderErrors, ZotError};
use crate::zot::paths::{self, ZOT_PORT};
use crate::zot::verify;
use crate::zot::version::ZotVersion;

/// The read and write timeout rendered when the spec sets none, on releases that have them
/// (v2.1.17+, whose own default of 60 s cuts off the push of a large layer).
pub const DEFAULT_HTTP_TIMEOUT: &str = "30m";

pub(super) fn build_http(
    spec: &ZotSpec<'_>,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> HttpConfig {
    let auth = spec.auth.cloned().unwrap_or_default();
    let http = spec.http.cloned().unwrap_or_default();
    let tls = spec.tls.is_some();
    if let Some(realm) = &auth.realm {
        if realm.is_empty() || realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
            errors.push(ZotError::invalid(
                "http.realm",
                format!("{realm:?} must be non-empty, without quotes, backslashes or control characters"),
            ));
        }
    }
    if auth.mtls.is_some() && !tls {
        errors.push(ZotError::invalid(
            "http.tls.cacert",
            "client certificate verification needs TLS",
        ));
    }
    let auth_config = build_auth(&auth, version, errors);
    let [read_timeout, write_timeout] = timeouts(&http, version, errors);
    let compat = if http.docker_compat == Some(false) {
        Vec::new()
    } else {
        vec![DOCKER_COMPAT.to_string()]
    };
    let external_url = auth.openid.as_ref().and_then(|o| o.external_url.clone());
    if let Some(url) = &external_url {
        check_http_url("http.externalURL", url, errors);
    }
    HttpConfig {
        address: "0.0.0.0".to_string(),
        port: ZOT_PORT.to_string(),
        external_url,
        realm: auth.realm.clone(),
        read_timeout,
        write_timeout,
        compat,
        tls: tls.then(|| TlsConfig {
            cert: paths::TLS_CERT.to_string(),
            key: paths::TLS_KEY.to_string(),
            cacert: auth.mtls.is_some().then(|| paths::TLS_CA.to_string()),
        }),
        auth: auth_config,
        access_control: auth
            .access_control
            .as_ref()
            .map(|ac| build_access_control(ac, errors)),
    }
}

/// `http.auth`: every sign-in method the spec sets, or `None` when it sets none.
fn build_auth(
    auth: &AuthSpec,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> Option<AuthConfig> {
    let htpasswd = auth.htpasswd_secret_ref.is_some();
    let api_keys = auth.api_keys.unwrap_or(false);
    let fail_delay = auth.fail_delay_seconds.and_then(|d| {
        if (0..=60).contains(&d) {
            u32::try_from(d).ok()
        } else {
            errors.push(ZotError::invalid(
                "http.auth.failDelay",
                format!("must be between 0 and 60 seconds, got {d}"),
            ));
            None
        }
    });
    let mtls = auth
        .mtls
        .as_ref()
        .and_then(|m| build_mtls(m, version, errors));
    let ldap = auth.ldap.as_ref().map(|l| build_ldap(l, errors));
    let bearer = auth
        .bearer
        .as_ref()
        .map(|b| build_bearer(b, version, errors));
    let openid = auth
        .openid
        .as_ref()
        .map(|o| build_openid(o, version, errors));
    let any_auth = htpasswd
        || fail_delay.is_some()
        || mtls.is_some()
        || ldap.is_some()
        || bearer.is_some()
        || openid.is_some()
        || api_keys;
    let config = any_auth.then(|| AuthConfig {
        htpasswd: htpasswd.then(|| HtpasswdConfig {
            path: paths::HTPASSWD_FILE.to_string(),
        }),
        ldap,
        bearer,
        openid,
        apikey: api_keys.then_some(true),
        mtls,
        fail_delay,
        session_driver: None,
    });
    if fail_delay.is_some() && !htpasswd && auth.ldap.is_none() {
        errors.push(ZotError::invalid(
            "http.auth.failDelay",
            "only applies to password logins: configure htpasswd or LDAP authentication",
        ));
    }
    if api_keys && !htpasswd && auth.ldap.is_none() && auth.openid.is_none() {
        errors.push(ZotError::invalid(
            "http.auth.apikey",
            "API keys are created by a signed-in user: add htpasswd, LDAP or OpenID sign-in",
        ));
    }
    config
}

/// `http.readTimeout` and `http.writeTimeout`: the spec's, else [`DEFAULT_HTTP_TIMEOUT`] on
/// releases that have the keys.
fn timeouts(
    http: &HttpSpec,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> [Option<String>; 2] {
    [
        (
            "http.readTimeout",
            "readTimeout (spec.http.readTimeout)",
            &http.read_timeout,
        ),
        (
            "http.writeTimeout",
            "writeTimeout (spec.http.writeTimeout)",
            &http.write_timeout,
        ),
    ]
    .map(|(key, feature, value)| {
        if version < HTTP_TIMEOUTS_SINCE {
            if value.is_some() {
                errors.push(ZotError::FeatureUnavailable {
                    feature: feature.to_string(),
                    min: HTTP_TIMEOUTS_SINCE,
                    version,
                });
            }
            return None;
        }
        Some(match value {
            Some(v) => duration(key, v, errors).0,
            None => DEFAULT_HTTP_TIMEOUT.to_string(),
        })
    })
}

/// First release accepting `http.auth.mtls` (identity attributes of client certificates).
pub const MTLS_IDENTITY_SINCE: ZotVersion = ZotVersion::new(2, 1, 12);
/// First release accepting bearer OIDC workload identity (`http.auth.bearer.oidc`).
pub const BEARER_OIDC_SINCE: ZotVersion = ZotVersion::new(2, 1, 14);
/// First release accepting a CA file for a bearer OIDC issuer.
pub const BEARER_OIDC_CA_SINCE: ZotVersion = ZotVersion::new(2, 1, 15);
/// First release accepting `claimMapping.groups` of an OpenID provider.
pub const OPENID_GROUPS_CLAIM_SINCE: ZotVersion = ZotVersion::new(2, 1, 17);

fn unavailable(feature: &str, min: ZotVersion, version: ZotVersion) -> ZotError {
    ZotError::FeatureUnavailable {
        feature: feature.to_string(),
        min,
        version,
    }
}

/// Client-certificate identities; the client CA is always there (`clientCaSecretRef` is
/// required).
fn build_mtls(
    mtls: &MtlsSpec,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> Option<MtlsConfig> {
    if mtls.identity_attributes.is_empty() && mtls.uri_san_pattern.is_none() {
        return None;
    }
    if version < MTLS_IDENTITY_SINCE {
        errors.push(unavailable(
            "client-certificate identity (spec.auth.mtls.identityAttributes, uriSanPattern)",
            MTLS_IDENTITY_SINCE,
            version,
        ));
        return None;
    }
    Some(MtlsConfig {
        identity_attributes: mtls
            .identity_attributes
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
        uri_san_pattern: mtls.uri_san_pattern.clone(),
    })
}

fn build_ldap(ldap: &LdapSpec, errors: &mut RenderErrors) -> LdapConfig {
    let tls = ldap.tls.unwrap_or_default();
    let ca = ldap.ca_secret_ref.is_some();
    for (key, value) in [
        ("address", &ldap.address),
        ("baseDN", &ldap.base_dn),
        ("userAttribute", &ldap.user_attribute),
    ] {
        if value.trim().is_empty() {
            errors.push(ZotError::invalid(
                format!("http.auth.ldap.{key}"),
                "must not be empty",
            ));
        }
    }
    if let Some(port) = ldap.port {
        if !(1..=65535).contains(&port) {
            errors.push(ZotError::invalid(
                "http.auth.ldap.port",
                format!("must be 1-65535, got {port}"),
            ));
        }
    }
    if ca && tls == LdapTls::None {
        errors.push(ZotError::invalid(
            "http.auth.ldap.caCert",
            "a CA verifies a TLS connection, but tls is None: use LDAPS or StartTLS",
        ));
    }
    LdapConfig {
        address: ldap.address.clone(),
        port: ldap.port.map(i64::from),
        insecure: (tls == LdapTls::None).then_some(true),
        start_tls: (tls == LdapTls::StartTls).then_some(true),
        skip_verify: ldap.insecure_skip_verify,
        ca_cert: ca.then(|| paths::LDAP_CA.to_string()),
        base_dn: ldap.base_dn.clone(),
        user_attribute: ldap.user_attribute.clone(),
        user_filter: ldap.user_filter.clone(),
        user_group_attribute: ldap.user_group_attribute.clone(),
        subtree_search: ldap.subtree_search,
        credentials_file: ldap
            .credentials_secret_ref
            .is_some()
            .then(|| paths::LDAP_CREDENTIALS_FILE.to_string()),
    }
}

fn build_bearer(
    bearer: &BearerSpec,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> BearerConfig {
    let server = [
        bearer.realm.is_some(),
        bearer.service.is_some(),
        bearer.cert_secret_ref.is_some(),
    ];
    if server.iter().any(|s| *s) && !server.iter().all(|s| *s) {
        errors.push(ZotError::invalid(
            "http.auth.bearer",
            "a token server needs realm, service and the certificate (certSecretRef) together",
        ));
    }
    if !server.iter().any(|s| *s) && bearer.oidc.is_empty() {
        errors.push(ZotError::invalid(
            "http.auth.bearer",
            "set a token server (realm, service, certSecretRef) or at least one oidc issuer",
        ));
    }
    if let Some(realm) = &bearer.realm {
        check_http_url("http.auth.bearer.realm", realm, errors);
    }
    let mut oidc = Vec::new();
    if !bearer.oidc.is_empty() && version < BEARER_OIDC_SINCE {
        errors.push(unavailable(
            "bearer OIDC workload identity (spec.auth.bearer.oidc)",
            BEARER_OIDC_SINCE,
            version,
        ));
    } else {
        for (i, o) in bearer.oidc.iter().enumerate() {
            let path = format!("http.auth.bearer.oidc[{i}]");
            check_http_url(format!("{path}.issuer"), &o.issuer, errors);
            if o.audiences.iter().all(|a| a.trim().is_empty()) {
                errors.push(ZotError::invalid(
                    format!("{path}.audiences"),
                    "needs at least one audience",
                ));
            }
            let ca = o.ca_secret_ref.is_some();
            if ca && version < BEARER_OIDC_CA_SINCE {
                errors.push(unavailable(
                    "a CA for a bearer OIDC issuer (spec.auth.bearer.oidc[].caSecretRef)",
                    BEARER_OIDC_CA_SINCE,
                    version,
                ));
            }
            oidc.push(BearerOidcConfig {
                issuer: o.issuer.clone(),
                audiences: o.audiences.clone(),
                claim_mapping: o.username_expression.clone().map(|username| {
                    BearerClaimMappingConfig {
                        username: Some(username),
                    }
                }),
                certificate_authority_file: (ca && version >= BEARER_OIDC_CA_SINCE)
                    .then(|| paths::bearer_oidc_ca(i)),
            });
        }
    }
    BearerConfig {
        realm: bearer.realm.clone(),
        service: bearer.service.clone(),
        cert: bearer
            .cert_secret_ref
            .is_some()
            .then(|| paths::BEARER_CERT.to_string()),
        oidc,
    }
}

fn build_openid(
    openid: &OpenIdSpec,
    version: ZotVersion,
    errors: &mut RenderErrors,
) -> OpenIdConfig {
    let mut providers = BTreeMap::new();
    if openid.providers.is_empty() {
        errors.push(ZotError::invalid(
            "http.auth.openid.providers",
            "needs at least one provider",
        ));
    }
    for p in &openid.providers {
        let kind = p.kind.as_str();
        let path = format!("http.auth.openid.providers.{kind}");
        if providers.contains_key(kind) {
            errors.push(ZotError::invalid(
                &path,
                "is listed twice: zot takes one provider of each kind",
            ));
            continue;
        }
        let oauth2 = verify::OAUTH2_PROVIDERS.contains(&kind);
        match (&p.issuer, oauth2) {
            (None, false) => errors.push(ZotError::invalid(
                format!("{path}.issuer"),
                "is required for an OpenID Connect provider",
            )),
            (Some(_), true) => errors.push(ZotError::invalid(
                format!("{path}.issuer"),
                "github signs in through OAuth2 and has no issuer",
            )),
            (Some(issuer), false) if !is_http_url(issuer) => errors.push(ZotError::invalid(
                format!("{path}.issuer"),
                format!("{issuer:?} is not an http(s) URL"),
            )),
            _ => {}
        }
        if p.groups_claim.is_some() && version < OPENID_GROUPS_CLAIM_SINCE {
            errors.push(unavailable(
                "an OpenID groups claim (spec.auth.openid.providers[].groupsClaim)",
                OPENID_GROUPS_CLAIM_SINCE,
                version,
            ));
        }
        let groups = p
            .groups_claim
            .clone()
            .filter(|_| version >= OPENID_GROUPS_CLAIM_SINCE);
        let claim_mapping =
            (p.username_claim.is_some() || groups.is_some()).then(|| OpenIdClaimMappingConfig {
                username: p.username_claim.clone(),
                groups,
            });
        providers.insert(
            kind.to_string(),
            OpenIdProviderConfig {
                credentials_file: paths::openid_credentials_file(kind),
                name: p.display_name.clone(),
                issuer: p.issuer.clone(),
                scopes: p.scopes.clone(),
                claim_mapping,
            },
        );
    }
    OpenIdConfig { providers }
}

fn build_access_control(ac: &AccessControlSpec, errors: &mut RenderErrors) -> AccessControlConfig {
    let mut repositories = BTreeMap::new();
    for (i, repo) in ac.repositories.iter().enumerate() {
        let path = format!("http.accessControl.repositories[{i}]");
        if repo.pattern != repo.pattern.to_ascii_lowercase() {
            errors.push(ZotError::invalid(
                &path,
                format!("glob {:?} must be lower-case: zot lower-cases it and repository names are lower-case", repo.pattern),
            ));
        }
        if repositories.contains_key(&repo.pattern.to_ascii_lowercase()) {
            errors.push(ZotError::invalid(
                &path,
                format!("glob {:?} is listed twice", repo.pattern),
            ));
        }
        for (j, p) in repo.policies.iter().enumerate() {
            if (p.users.is_empty() && p.groups.is_empty()) || p.actions.is_empty() {
                errors.push(ZotError::invalid(
                    format!("{path}.policies[{j}]"),
                    "needs at least one user or group and one action",
                ));
            }
        }
        repositories.insert(
            repo.pattern.to_ascii_lowercase(),
            RepositoryPolicyConfig {
                policies: repo
                    .policies
                    .iter()
                    .map(|p| UsersActionsConfig {
                        users: p.users.clone(),
                        groups: p.groups.clone(),
                        actions: actions(&p.actions),
                    })
                    .collect(),
                default_policy: actions(&repo.default_policy),
                anonymous_policy: actions(&repo.anonymous_policy),
            },
        );
    }
    AccessControlConfig {
        repositories,
        admin_policy: (!ac.admin_users.is_empty() || !ac.admin_groups.is_empty()).then(|| {
            UsersActionsConfig {
                users: ac.admin_users.clone(),
                groups: ac.admin_groups.clone(),
                actions: ["read", "create", "update", "delete"]
                    .map(String::from)
                    .to_vec(),
            }
        }),
        metrics: (!ac.metrics_users.is_empty()).then(|| MetricsAccessConfig {
            users: ac.metrics_users.clone(),
        }),
    }
}

fn actions(list: &[AccessAction]) -> Vec<String> {
    list.iter().map(|a| a.as_str().to_string()).collect()
}
