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
    pub fn code(&self) -> &'static str {
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
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const OTHER: &str = "whsec_other_secret";
    const NOW: i64 = 1_732_500_000;
    const PAYLOAD: &[u8] = br#"{"id":"evt_test","object":"event","type":"customer.created"}"#;

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::parse(s).unwrap()
    }

    fn verifier(secrets: &str) -> SignatureVerifier {
        SignatureVerifier::new(
            &WebhookSecrets::parse(secrets).unwrap(),
            SignatureTolerance::default(),
        )
    }

    fn check(header: &str) -> Result<VerifiedTimestamp, SignatureError> {
        verifier(SECRET).verify(Some(header.as_bytes()), PAYLOAD, NOW)
    }

    /// The `v1=…` element of a header made by `sign`.
    fn v1(secret_text: &str, t: i64) -> String {
        let header = sign(PAYLOAD, &secret(secret_text), t);
        header.split_once(',').unwrap().1.to_owned()
    }

    #[test]
    fn valid_signature_is_accepted_and_returns_its_timestamp() {
        let header = sign(PAYLOAD, &secret(SECRET), NOW);
        assert_eq!(check(&header), Ok(VerifiedTimestamp(NOW)));
        assert_eq!(check(&header).unwrap().as_unix(), NOW);
    }

    #[test]
    fn missing_header_is_missing() {
        let result = verifier(SECRET).verify(None, PAYLOAD, NOW);
        assert_eq!(result, Err(SignatureError::Missing));
    }

    #[test]
    fn empty_or_blank_header_is_missing() {
        for header in ["", " ", "\t "] {
            assert_eq!(check(header), Err(SignatureError::Missing), "{header:?}");
        }
    }

    #[test]
    fn malformed_header_is_invalid() {
        for header in [
            "garbage", "t", ",,,", "=", "t=,v1=", "v1=abc", "a=b,c=d", "tv1",
        ] {
            assert_eq!(check(header), Err(SignatureError::Invalid), "{header:?}");
        }
    }

    #[test]
    fn header_not_utf8_is_invalid() {
        let result = verifier(SECRET).verify(Some(b"t=1,v1=\xff\xfe"), PAYLOAD, NOW);
        assert_eq!(result, Err(SignatureError::Invalid));
    }

    #[test]
    fn header_without_timestamp_is_invalid() {
        assert_eq!(check(&v1(SECRET, NOW)), Err(SignatureError::Invalid));
    }

    #[test]
    fn non_numeric_timestamp_is_invalid() {
        let good = v1(SECRET, NOW);
        for t in [
            "abc",
            "1.5",
            "+1732500000",
            "-1",
            " 1732500000",
            "99999999999999999999",
        ] {
            let header = format!("t={t},{good}");
            assert_eq!(check(&header), Err(SignatureError::Invalid), "{t:?}");
        }
    }

    #[test]
    fn second_timestamp_is_invalid() {
        let header = format!("t={NOW},{},t={NOW}", v1(SECRET, NOW));
        assert_eq!(check(&header), Err(SignatureError::Invalid));
    }

    #[test]
    fn header_with_only_v0_is_invalid() {
        // v0 is the fake scheme of test events; even carrying a genuine MAC it proves nothing.
        let genuine = v1(SECRET, NOW).replacen("v1=", "v0=", 1);
        assert_eq!(
            check(&format!("t={NOW},{genuine}")),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn wrong_signature_is_invalid() {
        let header = sign(PAYLOAD, &secret(OTHER), NOW);
        assert_eq!(check(&header), Err(SignatureError::Invalid));
    }

    #[test]
    fn signature_for_another_timestamp_is_invalid() {
        let header = format!("t={},{}", NOW + 1, v1(SECRET, NOW));
        assert_eq!(check(&header), Err(SignatureError::Invalid));
    }

    #[test]
    fn tampered_body_is_invalid() {
        let header = sign(PAYLOAD, &secret(SECRET), NOW);
        let mut tampered = PAYLOAD.to_vec();
        tampered[8] ^= 1;
        let result = verifier(SECRET).verify(Some(header.as_bytes()), &tampered, NOW);
        assert_eq!(result, Err(SignatureError::Invalid));
        let with_newline = [PAYLOAD, b"\n"].concat();
        let result = verifier(SECRET).verify(Some(header.as_bytes()), &with_newline, NOW);
        assert_eq!(result, Err(SignatureError::Invalid));
    }

    #[test]
    fn valid_v1_first_middle_or_last_among_several_is_accepted() {
        let good = v1(SECRET, NOW);
        let bad1 = v1(OTHER, NOW);
        let bad2 = v1("whsec_third", NOW);
        for v1s in [
            format!("{good},{bad1},{bad2}"),
            format!("{bad1},{good},{bad2}"),
            format!("{bad1},{bad2},{good}"),
        ] {
            let header = format!("t={NOW},{v1s}");
            assert_eq!(check(&header), Ok(VerifiedTimestamp(NOW)), "{v1s}");
        }
    }

    #[test]
    fn second_configured_secret_matching_is_accepted() {
        let verifier = verifier(&format!("{OTHER},{SECRET}"));
        let header = sign(PAYLOAD, &secret(SECRET), NOW);
        assert!(
            verifier
                .verify(Some(header.as_bytes()), PAYLOAD, NOW)
                .is_ok()
        );
    }

    #[test]
    fn rotated_header_matches_any_secret_in_any_position() {
        // During a roll Stripe sends one v1 per active secret.
        let verifier = verifier(&format!("{OTHER},{SECRET}"));
        let header = format!("t={NOW},{},{}", v1(SECRET, NOW), v1("whsec_third", NOW));
        assert!(
            verifier
                .verify(Some(header.as_bytes()), PAYLOAD, NOW)
                .is_ok()
        );
    }

    #[test]
    fn unknown_schemes_and_elements_are_ignored() {
        let good = v1(SECRET, NOW);
        for header in [
            format!("t={NOW},{good},v0=6ffbb59b2300aae63f272406069a9788"),
            format!("t={NOW},v2=abc,{good},x-future=1=2"),
            format!("{good},t={NOW}"),
            format!("t={NOW},flag,{good}"),
        ] {
            assert_eq!(check(&header), Ok(VerifiedTimestamp(NOW)), "{header}");
        }
    }

    #[test]
    fn v1_not_hex_or_wrong_length_does_not_match_but_others_still_may() {
        let good = v1(SECRET, NOW);
        let real_hex = good.strip_prefix("v1=").unwrap();
        for candidate in [
            "not_hex".to_owned(),
            String::new(),
            "ff".to_owned(),
            "00".repeat(64),
            format!("{real_hex}00"),
            real_hex[..62].to_owned(),
            format!("{}zz", &real_hex[..62]),
        ] {
            let alone = format!("t={NOW},v1={candidate}");
            assert_eq!(check(&alone), Err(SignatureError::Invalid), "{candidate}");
            let with_good = format!("t={NOW},v1={candidate},{good}");
            assert!(check(&with_good).is_ok(), "{candidate}");
        }
    }

    #[test]
    fn timestamp_too_old_is_outside_tolerance() {
        let t = NOW - 301;
        let header = sign(PAYLOAD, &secret(SECRET), t);
        assert_eq!(
            check(&header),
            Err(SignatureError::TimestampOutsideTolerance)
        );
    }

    #[test]
    fn timestamp_too_far_in_future_is_outside_tolerance() {
        let t = NOW + 301;
        let header = sign(PAYLOAD, &secret(SECRET), t);
        assert_eq!(
            check(&header),
            Err(SignatureError::TimestampOutsideTolerance)
        );
    }

    #[test]
    fn timestamp_exactly_at_tolerance_passes_one_more_fails() {
        for (t, ok) in [
            (NOW - 300, true),
            (NOW + 300, true),
            (NOW - 301, false),
            (NOW + 301, false),
        ] {
            let header = sign(PAYLOAD, &secret(SECRET), t);
            assert_eq!(check(&header).is_ok(), ok, "t = now {:+}", t - NOW);
        }
    }

    #[test]
    fn configured_tolerance_is_used() {
        let verifier = SignatureVerifier::new(
            &WebhookSecrets::parse(SECRET).unwrap(),
            SignatureTolerance::parse(10).unwrap(),
        );
        let at = |t: i64| {
            let header = sign(PAYLOAD, &secret(SECRET), t);
            verifier.verify(Some(header.as_bytes()), PAYLOAD, NOW)
        };
        assert!(at(NOW - 10).is_ok());
        assert_eq!(at(NOW - 11), Err(SignatureError::TimestampOutsideTolerance));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        for t in [0, i64::MAX] {
            let header = sign(PAYLOAD, &secret(SECRET), t);
            assert_eq!(
                check(&header),
                Err(SignatureError::TimestampOutsideTolerance)
            );
        }
        let header = sign(PAYLOAD, &secret(SECRET), NOW);
        let result = verifier(SECRET).verify(Some(header.as_bytes()), PAYLOAD, i64::MIN);
        assert_eq!(result, Err(SignatureError::TimestampOutsideTolerance));
    }

    #[test]
    fn forged_signature_with_old_timestamp_is_invalid_not_outside_tolerance() {
        // Checking the signature first means a forger learns nothing about the window.
        let header = sign(PAYLOAD, &secret(OTHER), NOW - 10_000);
        assert_eq!(check(&header), Err(SignatureError::Invalid));
    }

    #[test]
    fn errors_map_to_the_http_contract_codes() {
        assert_eq!(SignatureError::Missing.code(), "missing_signature");
        assert_eq!(SignatureError::Invalid.code(), "invalid_signature");
        assert_eq!(
            SignatureError::TimestampOutsideTolerance.code(),
            "timestamp_outside_tolerance"
        );
    }

    #[test]
    fn sign_produces_stripes_header_format() {
        let header = sign(PAYLOAD, &secret(SECRET), NOW);
        let (t, v1) = header.split_once(',').unwrap();
        assert_eq!(t, format!("t={NOW}"));
        let hex_part = v1.strip_prefix("v1=").unwrap();
        assert_eq!(hex_part.len(), 64);
        assert!(
            hex_part
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }

    #[test]
    fn sign_matches_an_openssl_computed_vector() {
        // printf '1492774577.{}' | openssl dgst -sha256 -hmac whsec_test_secret
        let header = sign(b"{}", &secret(SECRET), 1_492_774_577);
        assert_eq!(
            header,
            "t=1492774577,v1=53140ab8fa70c511cc40d5c9198af7dde7bbaee877038c056d8250c3bd3b2e11"
        );
    }

    #[test]
    fn debug_does_not_reveal_keys() {
        let debug = format!("{:?}", verifier(&format!("{SECRET},{OTHER}")));
        assert_eq!(
            debug,
            "SignatureVerifier { secrets: 2, tolerance: SignatureTolerance(300) }"
        );
    }

    #[test]
    fn error_messages_do_not_echo_the_header() {
        for error in [
            SignatureError::Missing,
            SignatureError::Invalid,
            SignatureError::TimestampOutsideTolerance,
        ] {
            let message = error.to_string();
            assert!(!message.contains("v1=") && !message.contains("whsec_"));
        }
    }

    /// Cross-checks against async-stripe's independent signer (`stripe_webhook` is the library
    /// name of the `async-stripe-webhook` package).
    mod against_async_stripe {
        use super::*;
        use stripe_webhook::Webhook;

        const BODY: &str = r#"{"id":"evt_x","object":"event","data":{"object":{"id":"cus_1"}}}"#;

        #[test]
        fn header_generated_by_async_stripe_verifies() {
            let header = Webhook::generate_test_header(BODY, SECRET, Some(NOW));
            let result = verifier(SECRET).verify(Some(header.as_bytes()), BODY.as_bytes(), NOW);
            assert_eq!(result, Ok(VerifiedTimestamp(NOW)));
        }

        #[test]
        fn sign_equals_async_stripe_output_for_same_inputs() {
            for (body, key, t) in [
                (BODY, SECRET, NOW),
                ("", OTHER, 0),
                ("{\"emoji\":\"é✓\"}\n", "whsec_x", 1_492_774_577),
            ] {
                assert_eq!(
                    sign(body.as_bytes(), &secret(key), t),
                    Webhook::generate_test_header(body, key, Some(t)),
                );
            }
        }
    }
}
