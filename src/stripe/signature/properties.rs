//! Properties of `Stripe-Signature` verification, over any header, payload and time: it never
//! panics; a signature not made with a configured secret is never accepted; a signature made
//! with one is accepted for any payload at any time within the tolerance, beside the other
//! elements Stripe may add, and refused outside it.

use proptest::prelude::*;

use super::*;
use crate::properties::config;

const SECRET: &str = "whsec_configured";
const ROTATED: &str = "whsec_rotated_in";
const TOLERANCE_SECS: i64 = 300;

fn verifier() -> SignatureVerifier {
    SignatureVerifier::new(
        &WebhookSecrets::parse(&format!("{SECRET},{ROTATED}")).unwrap(),
        SignatureTolerance::parse(TOLERANCE_SECS).unwrap(),
    )
}

fn secret(text: &str) -> WebhookSecret {
    WebhookSecret::parse(text).unwrap()
}

/// Secrets that are not configured: `whsec_` and any visible characters.
fn other_secret() -> impl Strategy<Value = WebhookSecret> {
    "whsec_[!-~]{1,40}".prop_filter_map("a secret not configured", |s| {
        // Not a placeholder (`whsec_xxx`, …), which `parse` refuses.
        (s != SECRET && s != ROTATED)
            .then(|| WebhookSecret::parse(&s).ok())
            .flatten()
    })
}

/// Header elements Stripe's format allows beside `t` and `v1`: `v0`, unknown schemes, and
/// elements without `=`.
fn other_elements() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            "[0-9a-f]{64}".prop_map(|v0| format!("v0={v0}")),
            "v[2-9]=[0-9a-f]{0,64}",
            "[a-z]{1,3}",
        ],
        0..4,
    )
}

/// Headers shaped like Stripe's, with made-up signatures.
fn forged_header() -> impl Strategy<Value = String> {
    (
        any::<u32>(),
        prop::collection::vec("[0-9a-fA-F]{0,70}", 0..4),
        other_elements(),
    )
        .prop_map(|(t, v1s, others)| {
            std::iter::once(format!("t={t}"))
                .chain(v1s.into_iter().map(|v1| format!("v1={v1}")))
                .chain(others)
                .collect::<Vec<_>>()
                .join(",")
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_panics_on_any_header_payload_or_time(
        header in prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        now in any::<i64>(),
    ) {
        let _ = verifier().verify(header.as_deref(), &payload, now);
    }

    #[test]
    fn never_panics_on_any_text_header(header in any::<String>(), now in any::<i64>()) {
        let _ = verifier().verify(Some(header.as_bytes()), b"{}", now);
    }

    #[test]
    fn a_header_with_made_up_signatures_is_never_accepted(
        header in forged_header(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        now in any::<i64>(),
    ) {
        prop_assert!(verifier().verify(Some(header.as_bytes()), &payload, now).is_err());
    }

    #[test]
    fn a_signature_made_with_a_secret_not_configured_is_never_accepted(
        other in other_secret(),
        payload in prop::collection::vec(any::<u8>(), 0..500),
        t in 0i64..=i64::from(u32::MAX),
        skew in -TOLERANCE_SECS..=TOLERANCE_SECS,
    ) {
        let header = sign(&payload, &other, t);
        prop_assert_eq!(
            verifier().verify(Some(header.as_bytes()), &payload, t + skew),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn a_signature_of_another_payload_is_never_accepted(
        payload in prop::collection::vec(any::<u8>(), 0..200),
        other in prop::collection::vec(any::<u8>(), 0..200),
        t in 0i64..=i64::from(u32::MAX),
    ) {
        prop_assume!(payload != other);
        let header = sign(&other, &secret(SECRET), t);
        prop_assert_eq!(
            verifier().verify(Some(header.as_bytes()), &payload, t),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn signing_then_verifying_holds_for_any_payload_within_the_tolerance(
        payload in prop::collection::vec(any::<u8>(), 0..2000),
        t in 0i64..=i64::MAX - TOLERANCE_SECS,
        skew in -TOLERANCE_SECS..=TOLERANCE_SECS,
        rotated in any::<bool>(),
        others in other_elements(),
        forged_first in any::<bool>(),
    ) {
        let key = secret(if rotated { ROTATED } else { SECRET });
        let mut header = sign(&payload, &key, t);
        // A rotation's header: another v1 (of an old secret) may come first.
        if forged_first {
            header = header.replacen(",v1=", &format!(",v1={},v1=", "0".repeat(64)), 1);
        }
        for element in others {
            header = format!("{header},{element}");
        }
        prop_assert_eq!(
            verifier().verify(Some(header.as_bytes()), &payload, t + skew),
            Ok(VerifiedTimestamp(t))
        );
    }

    #[test]
    fn a_genuine_signature_outside_the_tolerance_is_refused_as_such(
        payload in prop::collection::vec(any::<u8>(), 0..200),
        t in 0i64..=i64::from(u32::MAX),
        beyond in 1i64..=1_000_000,
        later in any::<bool>(),
    ) {
        let header = sign(&payload, &secret(SECRET), t);
        let skew = TOLERANCE_SECS + beyond;
        let now = if later { t + skew } else { t - skew };
        prop_assert_eq!(
            verifier().verify(Some(header.as_bytes()), &payload, now),
            Err(SignatureError::TimestampOutsideTolerance)
        );
    }
}
