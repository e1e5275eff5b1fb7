//! The one error type of the registry client.
//!
//! Every variant names what failed and where: the (redacted) URL or the repository. `reason()`
//! gives the PascalCase string used for conditions, events and metric labels.

use std::fmt;

/// Everything the registry client can fail with.
///
/// URLs inside the variants are always redacted (no credentials, no signed query values).
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A repository name, tag, digest or image reference does not follow the distribution
    /// spec's grammar.
    #[error("invalid {kind} {input:?}: {message}")]
    InvalidReference {
        /// What was being parsed: `repository`, `tag`, `digest`, `reference`.
        kind: &'static str,
        /// The offending input (truncated to 256 characters).
        input: String,
        /// Why it is invalid.
        message: String,
    },

    /// The registry base URL or the client options cannot be used.
    #[error("invalid client configuration: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },

    /// Credentials could not be read (docker config, Secret data).
    #[error("invalid credentials: {message}")]
    InvalidCredentials {
        /// What is wrong (never contains the secret itself).
        message: String,
    },

    /// The registry could not be reached (connect, TLS, timeout, reset), after retries.
    #[error("{op} {url}: registry unreachable after {attempts} attempt(s): {message}")]
    Unreachable {
        /// The operation (`HeadManifest`, `Catalog`, ...).
        op: Operation,
        /// The redacted URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        message: String,
    },

    /// The registry kept answering 5xx, 408 or 429 until the retries ran out.
    #[error(
        "{op} {url}: registry answered {status} after {attempts} attempt(s){}",
        fmt_code(code)
    )]
    ServerError {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// The last status code.
        status: u16,
        /// The distribution error code of the last answer, if any.
        code: Option<String>,
        /// How many attempts were made.
        attempts: u32,
        /// The wait the last answer asked for (`Retry-After`, capped by the retry policy).
        retry_after: Option<std::time::Duration>,
    },

    /// 401: the registry does not accept who the client is — the credentials sent are wrong,
    /// expired or revoked, or none were sent where the registry wants some.
    #[error(
        "{op} {url}: unauthorized (401){}: {}",
        fmt_code(code),
        if *sent_credentials { "the registry rejects the credentials" } else { "the registry wants credentials and none were sent" }
    )]
    Unauthorized {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// The distribution error code, if any.
        code: Option<String>,
        /// Whether the request carried credentials (basic, or a token fetched with them).
        sent_credentials: bool,
    },

    /// 403, or a bearer registry's 401 `insufficient_scope`: the registry knows the account
    /// and does not let it do this (list the catalog, read a repository, delete).
    #[error(
        "{op} {url}: permission denied ({status}){}: the account may not {}",
        fmt_code(code),
        Refused::of(*op).what()
    )]
    Forbidden {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// The distribution error code, if any.
        code: Option<String>,
        /// 403, or 401 when a token for the scope was refused (`insufficient_scope`).
        status: u16,
    },

    /// 404 where the thing is required to exist (an unknown repository when listing tags, a
    /// manifest that must be read).
    #[error("{op} {url}: not found{}", fmt_code(code))]
    NotFound {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// The distribution error code (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, ...), if any.
        code: Option<String>,
    },

    /// The registry does not allow deleting this manifest by digest (deletion disabled, or the
    /// manifest is still referenced by an index).
    #[error(
        "delete {url}: registry does not allow this delete ({status}){}",
        fmt_code(code)
    )]
    DeleteNotAllowed {
        /// The redacted URL.
        url: String,
        /// The status code (405, 400, 409, ...).
        status: u16,
        /// The distribution error code, if any.
        code: Option<String>,
    },

    /// The registry cannot delete a tag on its own (distribution answers `400 DIGEST_INVALID`);
    /// the caller may fall back to deleting by digest.
    #[error(
        "delete {url}: registry does not support deleting a tag ({status}){}",
        fmt_code(code)
    )]
    TagDeleteUnsupported {
        /// The redacted URL.
        url: String,
        /// The status code (400 or 405).
        status: u16,
        /// The distribution error code, if any.
        code: Option<String>,
    },

    /// The registry does not take pushes here (405, or 400 `UNSUPPORTED`: a read-only
    /// registry, or a pull-through cache). Nothing was written by the refused request.
    #[error(
        "{op} {url}: registry does not accept pushes ({status}){}",
        fmt_code(code)
    )]
    PushNotAllowed {
        /// The operation refused.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// The status code (405 or 400).
        status: u16,
        /// The distribution error code, if any.
        code: Option<String>,
    },

    /// Any other unexpected status.
    #[error("{op} {url}: unexpected status {status}{}", fmt_code(code))]
    UnexpectedStatus {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// The status code.
        status: u16,
        /// The distribution error code, if any.
        code: Option<String>,
    },

    /// A response body was larger than the configured cap.
    #[error("{op} {url}: response body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// The cap in bytes.
        limit: u64,
    },

    /// The names of a listing (all its pages) outgrew the client's listing budget
    /// ([`ClientOptions::max_listing_bytes`](crate::oci::ClientOptions::max_listing_bytes)).
    #[error("{op} {url}: the {what} holds more than {limit} bytes of names, the most this client keeps of one listing; nothing is decided from a partial listing")]
    ListingTooLarge {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// `catalog` or `tag list`.
        what: &'static str,
        /// The budget in bytes.
        limit: u64,
    },

    /// A response body or header could not be understood.
    #[error("{op} {url}: invalid response: {message}")]
    InvalidResponse {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// What was wrong.
        message: String,
    },

    /// A `Link` header that is not `<url>; rel="next"`, points to another host, or loops.
    #[error("{op} {url}: invalid Link header: {message}")]
    InvalidLink {
        /// The operation.
        op: Operation,
        /// The redacted URL of the page that carried it.
        url: String,
        /// What was wrong.
        message: String,
    },

    /// A `WWW-Authenticate` header that cannot be parsed or used.
    #[error("{url}: invalid WWW-Authenticate challenge: {message}")]
    InvalidChallenge {
        /// The redacted URL that answered with it.
        url: String,
        /// What was wrong.
        message: String,
    },

    /// The bearer token endpoint failed or answered without a token.
    #[error("token request to {realm} failed: {message}")]
    TokenRequest {
        /// The redacted realm URL.
        realm: String,
        /// The status the realm answered with; `None` when it could not be reached.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },

    /// A Bearer challenge named a token realm that is not trusted with the credentials (not
    /// the registry's host, not of its registrable domain, not listed by the user): nothing
    /// was sent to it.
    #[error(
        "{registry} asks for its tokens at {realm_host}, which is neither its host nor of its registrable domain: the credentials were not sent there; if {realm_host} is the registry's token service, trust it (--trust-token-realm {realm_host}, or spec.external.trustedTokenRealms of the Registry)"
    )]
    UntrustedTokenRealm {
        /// The realm's host (without port).
        realm_host: String,
        /// The registry's `host[:port]`.
        registry: String,
    },

    /// The registry, reached over https, asks for its tokens at a plain-http realm: the
    /// credentials would cross the network in clear, so nothing was sent.
    #[error(
        "{registry} is reached over https but asks for its tokens at http://{realm_host}: the credentials were not sent in clear; the registry's token service must use https"
    )]
    PlainHttpTokenRealm {
        /// The realm's host (without port).
        realm_host: String,
        /// The registry's `host[:port]`.
        registry: String,
    },

    /// The content did not hash to the digest it was requested by.
    #[error("{url}: content digest {actual} does not match {expected}")]
    DigestMismatch {
        /// The redacted URL.
        url: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the received bytes.
        actual: String,
    },

    /// A paginated listing could not be completed; the partial result is discarded.
    #[error("{op} {url}: listing incomplete: {message}")]
    IncompleteListing {
        /// The operation.
        op: Operation,
        /// The redacted URL.
        url: String,
        /// Why.
        message: String,
    },

    /// The address policy refuses where a request would go: an IP literal in the URL or a
    /// redirect's `Location`, or every address a name resolved to. Nothing was sent there.
    #[error("{url}: {host}: address {address} not allowed by the {rule} rule ({})", rule.why())]
    AddressNotAllowed {
        /// The redacted URL requested.
        url: String,
        /// The host refused, as the URL — or the refused redirect's `Location` — names it.
        host: String,
        /// The address refused.
        address: std::net::IpAddr,
        /// The rule that refused it.
        rule: crate::oci::address::AddressRule,
    },

    /// The registry lacks a capability this call needs (e.g. zot's search extension).
    #[error("{url}: registry does not support {what}")]
    Unsupported {
        /// The redacted base URL.
        url: String,
        /// The missing capability.
        what: &'static str,
    },
}

fn fmt_code(code: &Option<String>) -> String {
    match code {
        Some(c) => format!(" [{c}]"),
        None => String::new(),
    }
}

impl OciError {
    /// The PascalCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            OciError::InvalidReference { .. } => "InvalidReference",
            OciError::InvalidConfig { .. } => "InvalidClientConfig",
            OciError::InvalidCredentials { .. } => "InvalidCredentials",
            OciError::Unreachable { .. } => "RegistryUnreachable",
            OciError::ServerError { status: 429, .. } => "RateLimited",
            OciError::ServerError { .. } => "RegistryServerError",
            OciError::Unauthorized {
                sent_credentials: false,
                ..
            } => "CredentialsRequired",
            OciError::Unauthorized { .. } => "CredentialsRejected",
            OciError::Forbidden { .. } => "PermissionDenied",
            OciError::NotFound { .. } => "NotFound",
            OciError::DeleteNotAllowed { .. } => "DeleteNotAllowed",
            OciError::TagDeleteUnsupported { .. } => "TagDeleteUnsupported",
            OciError::PushNotAllowed { .. } => "PushNotAllowed",
            OciError::UnexpectedStatus { .. } => "UnexpectedStatus",
            OciError::BodyTooLarge { .. } => "BodyTooLarge",
            OciError::ListingTooLarge { .. } => "ListingTooLarge",
            OciError::InvalidResponse { .. } => "InvalidResponse",
            OciError::InvalidLink { .. } => "InvalidLinkHeader",
            OciError::InvalidChallenge { .. } => "InvalidAuthChallenge",
            OciError::TokenRequest {
                status: Some(401), ..
            } => "CredentialsRejected",
            OciError::TokenRequest {
                status: Some(403), ..
            } => "PermissionDenied",
            OciError::TokenRequest { .. } => "TokenRequestFailed",
            OciError::UntrustedTokenRealm { .. } | OciError::PlainHttpTokenRealm { .. } => {
                "UntrustedTokenRealm"
            }
            OciError::DigestMismatch { .. } => "DigestMismatch",
            OciError::IncompleteListing { .. } => "IncompleteListing",
            OciError::Unsupported { .. } => "Unsupported",
            OciError::AddressNotAllowed { .. } => "AddressNotAllowed",
        }
    }

    /// True for failures that may go away by themselves (network, 5xx, 429): the caller should
    /// retry later. False for answers that will not change without a change of input or config.
    pub fn is_transient(&self) -> bool {
        match self {
            OciError::Unreachable { .. }
            | OciError::ServerError { .. }
            | OciError::IncompleteListing { .. } => true,
            OciError::TokenRequest { status, .. } => status.is_none_or(is_retryable_status),
            _ => false,
        }
    }

    /// Whether, and how, the registry refused the account: no credentials where it wants
    /// some, credentials it does not accept, or an account it knows but does not let do this.
    /// None for every other failure. A refusal is never transient: it lasts until the
    /// credentials or the account's rights change.
    pub fn denial(&self) -> Option<Denial> {
        match self {
            OciError::Unauthorized {
                sent_credentials: false,
                ..
            } => Some(Denial::CredentialsRequired),
            OciError::Unauthorized { .. } => Some(Denial::CredentialsRejected),
            OciError::Forbidden { op, .. } => Some(Denial::PermissionDenied(Refused::of(*op))),
            OciError::TokenRequest {
                status: Some(401), ..
            } => Some(Denial::CredentialsRejected),
            OciError::TokenRequest {
                status: Some(403), ..
            } => Some(Denial::PermissionDenied(Refused::Other)),
            OciError::UntrustedTokenRealm { .. } | OciError::PlainHttpTokenRealm { .. } => {
                Some(Denial::UntrustedTokenRealm)
            }
            _ => None,
        }
    }

    /// Whether a push was refused — the account by the registry ([`denial`](Self::denial)),
    /// or the registry taking no pushes at all ([`OciError::PushNotAllowed`]) — rather than
    /// failed: a caller that writes something optional (a run ledger) records it as
    /// unavailable and goes on. None for every other failure.
    pub fn push_refusal(&self) -> Option<PushRefusal> {
        match self {
            OciError::PushNotAllowed { .. } => Some(PushRefusal::RegistryReadOnly),
            _ => self.denial().map(PushRefusal::Account),
        }
    }

    pub(crate) fn invalid(kind: &'static str, input: &str, message: impl Into<String>) -> Self {
        let mut input = input.to_string();
        if input.len() > 256 {
            let mut cut = 256;
            while !input.is_char_boundary(cut) {
                cut -= 1;
            }
            input.truncate(cut);
            input.push('…');
        }
        OciError::InvalidReference {
            kind,
            input,
            message: message.into(),
        }
    }
}

/// Why the client's account did not get through (see [`OciError::denial`]): the registry
/// refused it, or the client would not present it where the registry sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Denial {
    /// 401 without credentials: the registry wants some.
    CredentialsRequired,
    /// 401 with credentials (or the token realm's 401): wrong, expired or revoked.
    CredentialsRejected,
    /// 403 (or a refused token scope): the account may not do what was refused.
    PermissionDenied(Refused),
    /// The registry sent the client to a token realm not trusted with the credentials; none
    /// were sent. Only a change of the trusted realms (or of the registry) helps.
    UntrustedTokenRealm,
}

impl Denial {
    /// The PascalCase reason: `CredentialsRequired`, `CredentialsRejected`,
    /// `PermissionDenied` or `UntrustedTokenRealm`.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::CredentialsRequired => "CredentialsRequired",
            Denial::CredentialsRejected => "CredentialsRejected",
            Denial::PermissionDenied(_) => "PermissionDenied",
            Denial::UntrustedTokenRealm => "UntrustedTokenRealm",
        }
    }
}

/// Why a push did not get through (see [`OciError::push_refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PushRefusal {
    /// The registry refused the account (no credentials, wrong ones, or no push right).
    Account(Denial),
    /// The registry takes no pushes from anyone (read-only, or a pull-through cache).
    RegistryReadOnly,
}

impl PushRefusal {
    /// The PascalCase reason: the [`Denial`]'s, or `RegistryReadOnly`.
    pub fn reason(self) -> &'static str {
        match self {
            PushRefusal::Account(d) => d.reason(),
            PushRefusal::RegistryReadOnly => "RegistryReadOnly",
        }
    }
}

/// What a registry refused to let an account do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refused {
    /// List the catalog (`GET /v2/_catalog`).
    Catalog,
    /// Read a repository (tags, manifests, blobs, referrers, search).
    Repository,
    /// Delete a manifest or tag.
    Delete,
    /// Push to a repository (blob uploads, mounts, manifests).
    Push,
    /// Anything else (the API root, a token scope).
    Other,
}

impl Refused {
    /// What the operation `op` needed the account to be allowed.
    pub fn of(op: Operation) -> Refused {
        match op {
            Operation::Catalog => Refused::Catalog,
            Operation::Tags
            | Operation::HeadManifest
            | Operation::GetManifest
            | Operation::GetBlob
            | Operation::Referrers
            | Operation::Search => Refused::Repository,
            Operation::DeleteManifest => Refused::Delete,
            Operation::StartUpload
            | Operation::MountBlob
            | Operation::UploadChunk
            | Operation::CompleteUpload
            | Operation::CancelUpload
            | Operation::PutManifest => Refused::Push,
            Operation::HeadBlob => Refused::Repository,
            Operation::Ping | Operation::Token | Operation::Capabilities => Refused::Other,
        }
    }

    /// `list the catalog`, `read this repository`, `delete`, `do this`.
    pub fn what(self) -> &'static str {
        match self {
            Refused::Catalog => "list the catalog",
            Refused::Repository => "read this repository",
            Refused::Delete => "delete",
            Refused::Push => "push to this repository",
            Refused::Other => "do this",
        }
    }
}

/// What the client was doing; used to count requests and label errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `GET /v2/` (health and auth discovery).
    Ping,
    /// `GET /v2/_catalog`.
    Catalog,
    /// `GET /v2/<name>/tags/list`.
    Tags,
    /// `HEAD /v2/<name>/manifests/<ref>`.
    HeadManifest,
    /// `GET /v2/<name>/manifests/<ref>`.
    GetManifest,
    /// `GET /v2/<name>/blobs/<digest>`.
    GetBlob,
    /// `GET /v2/<name>/referrers/<digest>`.
    Referrers,
    /// `DELETE /v2/<name>/manifests/<ref>`.
    DeleteManifest,
    /// `HEAD /v2/<name>/blobs/<digest>` (does a blob exist before it is pushed).
    HeadBlob,
    /// `POST /v2/<name>/blobs/uploads/` (opens an upload session).
    StartUpload,
    /// `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>` (cross-repository mount).
    MountBlob,
    /// `PATCH <upload location>` (one chunk of a chunked upload).
    UploadChunk,
    /// `PUT <upload location>?digest=<digest>` (closes an upload, with its last bytes).
    CompleteUpload,
    /// `DELETE <upload location>` (abandons an upload session).
    CancelUpload,
    /// `PUT /v2/<name>/manifests/<ref>`.
    PutManifest,
    /// Bearer token request to the realm.
    Token,
    /// zot extension discovery (`/v2/_zot/ext/mgmt`, `/v2/_oci/ext/discover`).
    Capabilities,
    /// zot search GraphQL (`/v2/_zot/ext/search`).
    Search,
}

impl Operation {
    /// All operations, in a stable order.
    pub const ALL: [Operation; 18] = [
        Operation::Ping,
        Operation::Catalog,
        Operation::Tags,
        Operation::HeadManifest,
        Operation::GetManifest,
        Operation::GetBlob,
        Operation::Referrers,
        Operation::DeleteManifest,
        Operation::HeadBlob,
        Operation::StartUpload,
        Operation::MountBlob,
        Operation::UploadChunk,
        Operation::CompleteUpload,
        Operation::CancelUpload,
        Operation::PutManifest,
        Operation::Token,
        Operation::Capabilities,
        Operation::Search,
    ];

    /// PascalCase name, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Ping => "Ping",
            Operation::Catalog => "Catalog",
            Operation::Tags => "Tags",
            Operation::HeadManifest => "HeadManifest",
            Operation::GetManifest => "GetManifest",
            Operation::GetBlob => "GetBlob",
            Operation::Referrers => "Referrers",
            Operation::DeleteManifest => "DeleteManifest",
            Operation::HeadBlob => "HeadBlob",
            Operation::StartUpload => "StartUpload",
            Operation::MountBlob => "MountBlob",
            Operation::UploadChunk => "UploadChunk",
            Operation::CompleteUpload => "CompleteUpload",
            Operation::CancelUpload => "CancelUpload",
            Operation::PutManifest => "PutManifest",
            Operation::Token => "Token",
            Operation::Capabilities => "Capabilities",
            Operation::Search => "Search",
        }
    }

    /// True for operations that change the registry (deletes, uploads, mounts, manifest
    /// pushes). Reads, token requests and search queries (a POST, but a query) are not
    /// mutating.
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Operation::DeleteManifest
                | Operation::StartUpload
                | Operation::MountBlob
                | Operation::UploadChunk
                | Operation::CompleteUpload
                | Operation::CancelUpload
                | Operation::PutManifest
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a JSON answer and where, without the answer's bytes: serde's messages
/// quote the values they met (`invalid type: string "…"`), and a registry's answer must not be
/// reflected into status, Events or logs.
pub fn json_problem(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "is not valid JSON",
        serde_json::error::Category::Eof => "ends early",
        serde_json::error::Category::Data => "does not have the expected shape",
        serde_json::error::Category::Io => "could not be read",
    };
    if e.line() == 0 {
        what.to_string()
    } else {
        format!("{what} (line {} column {})", e.line(), e.column())
    }
}

/// True for statuses worth retrying: 408, 429 and every 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

/// Result alias of the registry client.
pub type Result<T, E = OciError> = std::result::Result<T, E>;
