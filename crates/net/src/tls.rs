//! TLS for tradeflow's outbound clients (exchanges, LLM providers): rustls with the `ring` crypto provider and the Mozilla root
//! certificates compiled into `webpki-roots` (no OS certificate store needed, nothing fetched at
//! build or run time). One `ClientConfig` serves both reqwest (REST) and tokio-tungstenite
//! (WebSocket); it offers no ALPN protocol, so both speak HTTP/1.1, which the WebSocket upgrade
//! needs anyway.
//!
//! Why `ring`: it builds from the crate's bundled C and assembly with the system C compiler,
//! whereas rustls' default provider, aws-lc-rs, needs a much heavier C build (cmake on some
//! targets). reqwest is built with `rustls-no-provider`, so no second provider is compiled in.

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};

/// The shared client TLS configuration, built once.
pub fn client_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG.get_or_init(build).clone()
}

fn build() -> Result<Arc<ClientConfig>, String> {
    install_ring_provider();
    let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("rustls with ring: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Makes `ring` the process-wide default rustls provider unless one is installed already.
///
/// Our own clients do not depend on it (their config names `ring` explicitly), but rustls users
/// that call `ClientConfig::builder()` do: tokio-tungstenite when given no connector, reqwest
/// (built `rustls-no-provider`) when not given a preconfigured TLS config. Without a default
/// they panic, because this build contains no other provider. Installing fails only when some
/// provider is installed already, and that one then stays.
pub fn install_ring_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_builds_with_ring_and_the_default_is_installed() {
        let config = super::client_config().unwrap();
        assert!(config.alpn_protocols.is_empty());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
