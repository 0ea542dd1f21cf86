//! `Stripe-Signature` verification.
//!
//! Ours rather than a Stripe crate's: their verifiers take one secret (we accept several, for
//! rotation) and a fixed 300 s window (ours is configured), cannot tell a missing header from a
//! bad one (the HTTP contract answers them with different codes), and async-stripe 0.x checks only
//! the last `v1`, refusing a rotated header whose good signature comes first.
//!
//! Header: `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`, possibly with other schemes.
//! Signed payload: `<t>.<raw body>`, HMAC-SHA256 keyed with the whole `whsec_…` string.

use std::fmt;

use hmac::digest::{CtOutput, Output};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::webhook_secret::{SignatureTolerance, WebhookSecret, WebhookSecrets};

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused. Messages are fixed text: nothing from the header is echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed or no v1 signature matches")]
    Invalid,
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    TimestampOutsideTolerance,
}

impl SignatureError {
    /// The `error.code` of the HTTP response.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_signature",
            Self::Invalid => "invalid_signature",
            Self::TimestampOutsideTolerance => "timestamp_outside_tolerance",
        }
    }
}

/// The `t` of a header whose signature matched and whose timestamp is within the tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedTimestamp(i64);

impl VerifiedTimestamp {
    pub fn as_unix(&self) -> i64 {
        self.0
    }
}

/// Checks `Stripe-Signature` headers against every configured secret. Build once, share.
#[derive(Clone)]
pub struct SignatureVerifier {
    // Keyed once at start-up: cloning the keyed state is cheaper than re-deriving the padded key
    // blocks on every request.
    keyed: Vec<HmacSha256>,
    tolerance: SignatureTolerance,
}

impl SignatureVerifier {
    pub fn new(secrets: &WebhookSecrets, tolerance: SignatureTolerance) -> Self {
        Self {
            keyed: secrets.iter().map(keyed_mac).collect(),
            tolerance,
        }
    }

    /// Verifies `header` (the raw `Stripe-Signature` value, `None` when absent) for the exact
    /// request body `payload`, at `now_unix`.
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        payload: &[u8],
        now_unix: i64,
    ) -> Result<VerifiedTimestamp, SignatureError> {
        let header = header
            .filter(|h| !h.trim_ascii().is_empty())
            .ok_or(SignatureError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| SignatureError::Invalid)?;
        let (t_text, t) = timestamp(header)?;

        let v1s = || {
            elements(header)
                .filter(|(key, _)| *key == "v1")
                .map(|(_, v1)| v1)
        };
        if v1s().next().is_none() {
            return Err(SignatureError::Invalid);
        }

        // One MAC per secret, compared with every v1: many v1s in a header cost cheap
        // constant-time compares, not more hashing of the body.
        let genuine = self.keyed.iter().any(|mac| {
            let expected = signed(mac.clone(), t_text, payload).finalize();
            v1s().any(|v1| {
                let mut tag = Output::<HmacSha256>::default();
                // Not hex, or not 32 bytes: cannot match, but another v1 still may.
                hex::decode_to_slice(v1, &mut tag).is_ok() && CtOutput::new(tag) == expected
            })
        });
        if !genuine {
            return Err(SignatureError::Invalid);
        }

        // Only after the signature: a forger must not learn anything about the window.
        if now_unix.abs_diff(t) > self.tolerance.as_secs().unsigned_abs() {
            return Err(SignatureError::TimestampOutsideTolerance);
        }
        Ok(VerifiedTimestamp(t))
    }
}

impl fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("secrets", &self.keyed.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

/// The `Stripe-Signature` value Stripe would send for `payload` at `timestamp`:
/// `t={timestamp},v1={hex hmac}`.
pub fn sign(payload: &[u8], secret: &WebhookSecret, timestamp: i64) -> String {
    let t = timestamp.to_string();
    let tag = signed(keyed_mac(secret), &t, payload).finalize();
    format!("t={t},v1={}", hex::encode(tag.as_bytes()))
}

fn keyed_mac(secret: &WebhookSecret) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes a key of any length")
}

/// Feeds `<t>.<payload>` in pieces, so a large body is never copied into a joined buffer.
fn signed(mut mac: HmacSha256, t_text: &str, payload: &[u8]) -> HmacSha256 {
    mac.update(t_text.as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// `key=value` elements, split at the first `=`. An element without `=` carries nothing we use
/// and is skipped, as Stripe's own libraries do.
fn elements(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header
        .split(',')
        .filter_map(|element| element.split_once('='))
}

/// The one `t`, as sent (it is what was signed) and as a number.
///
/// Stripe sends plain decimal digits; a sign, spaces or a second `t` are not from Stripe, and
/// refusing them means the signed text and the checked number can never disagree.
fn timestamp(header: &str) -> Result<(&str, i64), SignatureError> {
    let mut ts = elements(header)
        .filter(|(key, _)| *key == "t")
        .map(|(_, t)| t);
    let (Some(text), None) = (ts.next(), ts.next()) else {
        return Err(SignatureError::Invalid);
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Invalid);
    }
    let t = text.parse().map_err(|_| SignatureError::Invalid)?;
    Ok((text, t))
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
