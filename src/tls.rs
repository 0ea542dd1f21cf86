//! rustls needs one process-wide choice of crypto; sqlx and reqwest share ring's.

/// Installs ring as rustls' crypto provider; later calls are no-ops.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
