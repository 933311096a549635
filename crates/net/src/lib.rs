//! Outbound network setup shared by every client that leaves the machine (exchanges, LLM
//! providers), so that they all make the same TLS choices.

pub mod http;
pub mod tls;
