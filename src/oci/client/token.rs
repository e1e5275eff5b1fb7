//! The token flow: a 401's Bearer challenge learnt once, tokens fetched from its realm and
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

/// Safety margin subtracted from a bearer token's lifetime.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct AuthState {
    /// Set once the registry answered with a Bearer challenge.
    bearer: Option<BearerRealm>,
    /// Tokens per scope key with their expiry.
    pub(super) tokens: HashMap<String, (String, Instant)>,
}

#[derive(Clone)]
struct BearerRealm {
    realm: Url,
    service: Option<String>,
}

impl RegistryClient {
    fn cached_token(&self, key: &str) -> Option<String> {
        let st = lock(&self.inner.auth);
        st.tokens
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| t.clone())
    }

    pub(super) async fn auth_header(&self, req: &Req) -> Result<Option<String>> {
        let key = req.scope.clone().unwrap_or_default();
        let realm = lock(&self.inner.auth).bearer.clone();
        if let Some(realm) = realm {
            if let Some(t) = self.cached_token(&key) {
                return Ok(Some(format!("Bearer {t}")));
            }
            // The realm is known: fetch the token up front and save the 401 round trip.
            if req.auth_retry {
                let t = self.fetch_token(&realm, req.scope.as_deref(), &key).await?;
                return Ok(Some(format!("Bearer {t}")));
            }
            return Ok(None);
        }
        Ok(self.inner.credentials.basic_header())
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
        if let Some(h) = self.inner.credentials.basic_header() {
            rb = rb.header(AUTHORIZATION, h);
        }
        self.inner.counters.count(Operation::Token);
        tracing::debug!(url = %redact_url(&url), "requesting bearer token");
        let resp = rb
            .send()
            .await
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

    /// Handles a 401: learns a Bearer challenge and fetches a token. Returns true when the
    /// request should be sent again.
    pub(super) async fn on_unauthorized(&self, req: &Req, headers: &HeaderMap) -> Result<bool> {
        let Some(value) = headers.get(WWW_AUTHENTICATE) else {
            return Ok(false);
        };
        let redacted = redact_url(&req.url);
        let value = value.to_str().map_err(|_| OciError::InvalidChallenge {
            url: redacted.clone(),
            message: "header is not ASCII".to_string(),
        })?;
        let challenges = parse_challenges(value).map_err(|m| OciError::InvalidChallenge {
            url: redacted.clone(),
            message: m,
        })?;
        let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") else {
            return Ok(false); // Basic: the credentials we sent (if any) were rejected
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
        let realm = BearerRealm {
            realm,
            service: bearer.param("service").map(str::to_string),
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
