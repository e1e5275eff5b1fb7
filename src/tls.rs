//! TLS set-up shared by the binary and the library's entry points.

/// Installs rustls' `ring` crypto provider as the process default, once.
///
/// Two providers are compiled in (kube's client asks for `ring`, reqwest brings `aws-lc-rs`),
/// and rustls refuses to guess between them: without a default, the first TLS connection to
/// the API server would panic. Calling this again is harmless.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have won the race; either way a default is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
