//! Who is calling `POST /customers`: a Supabase access token, verified.
//!
//! `jwt` checks a token's signature and claims; `jwks` keeps the project's public signing keys.
//! Nothing here logs a token or a claim beyond the role.

pub(crate) mod jwks;
pub(crate) mod jwt;
#[cfg(test)]
mod properties;

pub(crate) use jwks::JwksCache;
pub(crate) use jwt::{Caller, TokenError, TokenVerifier};
