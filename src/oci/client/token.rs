//! Who gets the credentials, and the token flow.
//!
//! Nothing is sent before the registry asks: the first request carries no `Authorization`.
//! A `401` with a `Basic` challenge from the registry's own origin (scheme, host, port) is
//! learnt once; from then on Basic goes with every request to that origin (as docker does), so
//! it costs one round trip per client, not per request. A `Bearer` challenge is learnt once
//! too; its realm gets the Basic credentials only when [`realm_trusted`] says so, otherwise
//! nothing is sent and the request fails with [`OciError::UntrustedTokenRealm`]. Tokens are
//! cached per scope until shortly before they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use url::Url;

use super::request::{address_refused, read_capped, transport_message, ReadError, Req};
use super::{lock, RegistryClient};
use crate::oci::auth::{parse_challenges, TokenResponse};
use crate::oci::error::{OciError, Operation, Result};
use crate::oci::redact::redact_url;
use crate::oci::trust::realm_trusted;

/// Safety margin subtracted from a bearer token's lifetime.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct AuthState {
    /// Set once the registry answered with a Bearer challenge.
    bearer: Option<BearerRealm>,
    /// Set once the registry's own origin answered 401 with a Basic challenge (and the client
    /// has credentials): Basic then goes with every request to that origin.
    basic: bool,
    /// Tokens per scope key with their expiry.
    pub(super) tokens: HashMap<String, (String, Instant)>,
}

#[derive(Clone)]
struct BearerRealm {
    realm: Url,
    service: Option<String>,
    /// Whether the realm gets the Basic credentials (the client has some and trusts it).
    with_credentials: bool,
}

/// The `Authorization` value a request goes with, and whether it presents the user's
/// credentials (Basic, or a token the realm granted for them).
pub(super) struct Authorization {
    pub(super) value: String,
    pub(super) credentialed: bool,
}

impl RegistryClient {
    fn cached_token(&self, key: &str) -> Option<String> {
        let st = lock(&self.inner.auth);
        st.tokens
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// The `Authorization` for `req`: a token once the registry named its realm; Basic once
    /// its own origin asked for it; else none.
    pub(super) async fn auth_header(&self, req: &Req) -> Result<Option<Authorization>> {
        let key = req.scope.clone().unwrap_or_default();
        let (realm, basic) = {
            let st = lock(&self.inner.auth);
            (st.bearer.clone(), st.basic)
        };
        if let Some(realm) = realm {
            let bearer = |t: String| Authorization {
                value: format!("Bearer {t}"),
                credentialed: realm.with_credentials,
            };
            if let Some(t) = self.cached_token(&key) {
                return Ok(Some(bearer(t)));
            }
            // The realm is known: fetch the token up front and save the 401 round trip.
            if req.auth_retry {
                let t = self.fetch_token(&realm, req.scope.as_deref(), &key).await?;
                return Ok(Some(bearer(t)));
            }
            return Ok(None);
        }
        if basic && req.url.origin() == self.inner.base.origin() {
            return Ok(self
                .inner
                .credentials
                .basic_header()
                .map(|value| Authorization {
                    value,
                    credentialed: true,
                }));
        }
        Ok(None)
    }

    /// Whether the registry has asked for the credentials so far (a Basic challenge from its
    /// origin, or a trusted token realm): false while none were sent.
    pub fn credentials_requested(&self) -> bool {
        let st = lock(&self.inner.auth);
        self.has_credentials()
            && (st.basic || st.bearer.as_ref().is_some_and(|b| b.with_credentials))
    }

    /// Learns a Basic challenge of a 401: true when the request should be sent again with the
    /// credentials — the client has some, the challenge came from the registry's own origin
    /// (`same_origin`: not from a host a redirect led to) and the request went without them.
    pub(super) fn learn_basic(&self, headers: &HeaderMap, same_origin: bool, sent: bool) -> bool {
        let challenges: Vec<_> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| parse_challenges(v).ok())
            .flatten()
            .collect();
        // a registry offering Bearer too is answered with a token, not with Basic
        let basic = challenges.iter().any(|c| c.scheme == "basic")
            && !challenges.iter().any(|c| c.scheme == "bearer");
        if !basic || !same_origin || sent || !self.has_credentials() {
            return false;
        }
        lock(&self.inner.auth).basic = true;
        true
    }

    /// Fetches a token for `scope` and caches it under `key`, retrying transient failures of
    /// the realm like any other request.
    async fn fetch_token(
        &self,
        realm: &BearerRealm,
        scope: Option<&str>,
        key: &str,
    ) -> Result<String> {
        let policy = &self.inner.options.retry;
        let mut retries = 0;
        loop {
            match self.fetch_token_once(realm, scope, key).await {
                Err(e) if e.is_transient() && retries < policy.max_retries => {
                    retries += 1;
                    self.inner.counters.retry();
                    tokio::time::sleep(policy.backoff(retries)).await;
                }
                other => return other,
            }
        }
    }

    async fn fetch_token_once(
        &self,
        realm: &BearerRealm,
        scope: Option<&str>,
        key: &str,
    ) -> Result<String> {
        let mut url = realm.realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &realm.service {
                q.append_pair("service", s);
            }
            if let Some(s) = scope.filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let redacted = redact_url(&realm.realm);
        let err_status = |status: Option<u16>, message: String| OciError::TokenRequest {
            realm: redacted.clone(),
            status,
            message,
        };
        let err = |message: String| err_status(None, message);
        self.check_address(&url)?;
        let mut rb = self.inner.http.get(url.clone());
        if realm.with_credentials {
            if let Some(h) = self.inner.credentials.basic_header() {
                rb = rb.header(AUTHORIZATION, h);
            }
        }
        self.inner.counters.count(Operation::Token);
        tracing::debug!(url = %redact_url(&url), "requesting bearer token");
        let started = Instant::now();
        let sent = rb.send().await;
        self.observe(
            Operation::Token,
            sent.as_ref().ok().map(|r| r.status().as_u16()),
            started,
        );
        let resp = sent
            .map_err(|e| address_refused(&e, &url).unwrap_or_else(|| err(transport_message(&e))))?;
        let status = resp.status();
        let body = match read_capped(resp, self.inner.options.max_body_bytes, false).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Err(err_status(
                    Some(status.as_u16()),
                    "token response too large".to_string(),
                ))
            }
            Err(ReadError::Transport(m)) => return Err(err(m)),
        };
        if !status.is_success() {
            return Err(err_status(
                Some(status.as_u16()),
                format!("status {}", status.as_u16()),
            ));
        }
        let bad = |message: &str| err_status(Some(status.as_u16()), message.to_string());
        let tr: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| bad("answer is not a token JSON"))?;
        let token = tr
            .token
            .filter(|t| !t.is_empty())
            .or(tr.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| bad("answer holds no token"))?;
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("token holds invalid characters"));
        }
        let life = Duration::from_secs(tr.expires_in.unwrap_or(60).max(1));
        let expiry = Instant::now()
            + life
                .saturating_sub(TOKEN_MARGIN)
                .max(Duration::from_secs(1));
        lock(&self.inner.auth)
            .tokens
            .insert(key.to_string(), (token.clone(), expiry));
        Ok(token)
    }

    /// Handles a 401: learns a Bearer challenge and fetches a token, or learns a Basic one
    /// ([`learn_basic`](Self::learn_basic)). Returns true when the request should be sent
    /// again. `same_origin`: the answer came from the registry's origin; `sent`: the request
    /// carried the credentials. A realm not trusted with the credentials is an error, and
    /// nothing is sent to it.
    pub(super) async fn on_unauthorized(
        &self,
        req: &Req,
        headers: &HeaderMap,
        same_origin: bool,
        sent: bool,
    ) -> Result<bool> {
        let redacted = redact_url(&req.url);
        // every WWW-Authenticate header: a registry may send Basic and Bearer in two
        let mut challenges = Vec::new();
        for value in headers.get_all(WWW_AUTHENTICATE) {
            let value = value.to_str().map_err(|_| OciError::InvalidChallenge {
                url: redacted.clone(),
                message: "header is not ASCII".to_string(),
            })?;
            challenges.extend(
                parse_challenges(value).map_err(|m| OciError::InvalidChallenge {
                    url: redacted.clone(),
                    message: m,
                })?,
            );
        }
        if challenges.is_empty() {
            return Ok(false);
        }
        let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") else {
            // Basic: asked for the first time, or the credentials sent were rejected
            return Ok(self.learn_basic(headers, same_origin, sent));
        };
        let realm_str = bearer
            .param("realm")
            .ok_or_else(|| OciError::InvalidChallenge {
                url: redacted.clone(),
                message: "Bearer challenge without realm".to_string(),
            })?;
        let realm = Url::parse(realm_str)
            .ok()
            .filter(|u| u.scheme() == "https" || u.scheme() == "http")
            .ok_or_else(|| OciError::InvalidChallenge {
                url: redacted.clone(),
                message: "realm is not an http(s) URL".to_string(),
            })?;
        let with_credentials = self.has_credentials();
        if with_credentials {
            let registry_host = self.inner.base.host_str().unwrap_or_default();
            let realm_host = realm.host_str().unwrap_or_default();
            // No downgrade: a registry on https does not get its credentials sent in clear.
            if self.inner.base.scheme() == "https" && realm.scheme() == "http" {
                tracing::warn!(registry = %self.host(), realm_host, "plain-http token realm of an https registry; nothing sent");
                return Err(OciError::PlainHttpTokenRealm {
                    realm_host: realm_host.to_string(),
                    registry: self.host(),
                });
            }
            if !realm_trusted(
                registry_host,
                realm_host,
                &self.inner.options.trusted_token_realms,
            ) {
                tracing::warn!(registry = %self.host(), realm_host, "token realm not trusted with the credentials; nothing sent");
                return Err(OciError::UntrustedTokenRealm {
                    realm_host: realm_host.to_string(),
                    registry: self.host(),
                });
            }
        }
        let realm = BearerRealm {
            realm,
            service: bearer.param("service").map(str::to_string),
            with_credentials,
        };
        lock(&self.inner.auth).bearer = Some(realm.clone());
        let key = req.scope.clone().unwrap_or_default();
        let scope = bearer
            .param("scope")
            .map(str::to_string)
            .or(req.scope.clone());
        self.fetch_token(&realm, scope.as_deref(), &key).await?;
        Ok(true)
    }
}
