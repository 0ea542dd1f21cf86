//! Who is calling `POST /customers`: a Supabase access token, verified.
//!
//! `jwt` checks a token's signature and claims; `jwks` keeps the project's public signing keys.
//! Nothing here logs a token or a claim beyond the role.

pub mod jwks;
pub mod jwt;
#[cfg(test)]
mod properties;

pub use jwks::JwksCache;
pub use jwt::{Caller, TokenError, TokenVerifier};
