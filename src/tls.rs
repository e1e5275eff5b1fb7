//! TLS: one crypto provider for the whole build, rustls' `ring`.
//!
//! kube's client is built with `ring`, and reqwest without a provider of its own
//! (`rustls-no-provider`), so no C library (aws-lc) is compiled. kube picks the only provider
//! by itself; reqwest takes the process default and panics when there is none, so every
//! place that builds a reqwest client calls [`install_crypto_provider`] first.

/// Installs rustls' `ring` crypto provider as the process default, once. Calling this again
/// is harmless.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have won the race; either way a default is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
