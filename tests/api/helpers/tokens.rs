//! Supabase-style access tokens for the tests: HS256 with the project's secret, ES256 with a
//! signing key whose public half the Stripe double serves as the project's JWKS.
//!
//! Keys are made with ring (in the tree already through rustls); tokens are signed with
//! jsonwebtoken, the crate the service verifies with, but with keys the service never sees.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use uuid::Uuid;

/// The project's legacy JWT secret (Supabase's local-development default is this long).
pub const JWT_SECRET: &str = "test-only-jwt-secret-with-at-least-32-characters";

pub fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

/// The claims Supabase Auth gives a signed-in user.
pub fn user_claims(user_id: Uuid) -> Value {
    json!({
        "iss": "https://project-ref.supabase.co/auth/v1",
        "sub": user_id,
        "aud": "authenticated",
        "exp": in_an_hour(),
        "iat": in_an_hour() - 3600,
        "email": format!("{user_id}@example.com"),
        "role": "authenticated",
        "aal": "aal1",
        "session_id": Uuid::new_v4(),
        "is_anonymous": false
    })
}

/// A user's access token, HS256 with [`JWT_SECRET`].
pub fn user_token(user_id: Uuid) -> String {
    hs256(&user_claims(user_id), JWT_SECRET)
}

/// The project's `service_role` key, as Supabase issues it (no `sub`, no `aud`).
pub fn service_role_token() -> String {
    hs256(
        &json!({"iss": "supabase", "ref": "project-ref", "role": "service_role",
                "iat": 1_700_000_000, "exp": in_an_hour()}),
        JWT_SECRET,
    )
}

pub fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An ES256 signing key of the project, with its id.
pub struct SigningKey {
    pub kid: String,
    pkcs8: Vec<u8>,
    /// The uncompressed public point: 0x04 ‖ x ‖ y.
    public: Vec<u8>,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The public key as Supabase's JWKS lists it.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "key_ops": ["verify"],
            "ext": true,
            "kid": self.kid,
            "x": base64url(&self.public[1..33]),
            "y": base64url(&self.public[33..65]),
        })
    }

    /// A token signed with this key, naming it in `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

/// The JWKS of some keys.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// Unpadded base64url (RFC 7515), for the JWK's coordinates.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn base64url_matches_rfc_4648_without_padding() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(b"foob"), "Zm9vYg");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}
