//! Where zot's pods mount things: the paths the renderer writes into `config.json` and the
//! resource builders mount volumes at, and the port zot listens on.

/// Directory of `config.json` (the ConfigMap mount).
pub const CONFIG_DIR: &str = "/etc/zot";
/// The config file zot is started with.
pub const CONFIG_FILE: &str = "/etc/zot/config.json";
/// Local storage root (the data volume).
pub const ROOT_DIRECTORY: &str = "/var/lib/registry";
/// Sync staging directory used with cloud storage.
pub const SYNC_DOWNLOAD_DIR: &str = "/var/lib/registry/_sync";
/// Directory of the htpasswd Secret mount.
pub const HTPASSWD_DIR: &str = "/secrets/htpasswd";
/// The htpasswd file.
pub const HTPASSWD_FILE: &str = "/secrets/htpasswd/htpasswd";
/// Directory of the TLS Secret mount.
pub const TLS_DIR: &str = "/secrets/tls";
/// TLS certificate chain.
pub const TLS_CERT: &str = "/secrets/tls/tls.crt";
/// TLS private key.
pub const TLS_KEY: &str = "/secrets/tls/tls.key";
/// Directory of the client CA Secret mount (mTLS).
pub const CLIENT_CA_DIR: &str = "/secrets/client-ca";
/// CA bundle verifying client certificates.
pub const TLS_CA: &str = "/secrets/client-ca/ca.crt";
/// Directory of the bearer token server's certificate mount.
pub const BEARER_DIR: &str = "/secrets/bearer";
/// Certificate (or public key) verifying bearer tokens.
pub const BEARER_CERT: &str = "/secrets/bearer/cert.pem";
/// Directory of the LDAP credentials Secret mount.
pub const LDAP_CREDENTIALS_DIR: &str = "/secrets/ldap";
/// zot's LDAP credentials file (`bindDN`, `bindPassword`).
pub const LDAP_CREDENTIALS_FILE: &str = "/secrets/ldap/credentials.json";
/// Directory of the LDAP CA Secret mount.
pub const LDAP_CA_DIR: &str = "/secrets/ldap-ca";
/// CA bundle verifying the LDAP server.
pub const LDAP_CA: &str = "/secrets/ldap-ca/ca.crt";

/// Directory of one OpenID provider's credentials mount.
pub fn openid_dir(provider: &str) -> String {
    format!("/secrets/openid/{provider}")
}
/// One OpenID provider's credentials file (`clientid`, `clientsecret`).
pub fn openid_credentials_file(provider: &str) -> String {
    format!("/secrets/openid/{provider}/credentials.json")
}
/// Directory of the CA mount of bearer OIDC issuer `index`.
pub fn bearer_oidc_ca_dir(index: usize) -> String {
    format!("/secrets/bearer-oidc-{index}")
}
/// CA bundle verifying bearer OIDC issuer `index`.
pub fn bearer_oidc_ca(index: usize) -> String {
    format!("/secrets/bearer-oidc-{index}/ca.crt")
}
/// Directory of the sync credentials Secret mount.
pub const SYNC_CREDENTIALS_DIR: &str = "/secrets/sync";
/// The sync credentials file.
pub const SYNC_CREDENTIALS_FILE: &str = "/secrets/sync/credentials.json";

/// The port zot listens on inside the pod.
pub const ZOT_PORT: u16 = 5000;
