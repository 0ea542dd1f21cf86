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
