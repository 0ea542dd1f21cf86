//! Supabase access tokens: HS256 with the project's legacy JWT secret, or RS256/ES256 with a
//! key of the project's JWKS (asymmetric signing keys), checked with `jsonwebtoken`.
//!
//! What Supabase Auth puts in a user's token: `sub` (the user id), `role: "authenticated"`,
//! `aud: "authenticated"`, `exp`. A `service_role` key (a backend's) carries
//! `role: "service_role"` and `exp`, and neither `sub` nor `aud`; an `anon` key `role: "anon"`.
//! The algorithm comes from the key, never from the token alone: an HS256 token is checked only
//! against the configured secret, an RS256/ES256 one only against the JWKS key its `kid` names
//! with that key's algorithm; `alg: none` and everything else is refused.
//!
//! Times: `exp` and `nbf` with the same small leeway. Issuer: when the project's is known
//! (`SUPABASE_URL`, or derived from `SUPABASE_JWKS_URL`), a user's token must name it, as Auth
//! issues them (`https://<ref>.supabase.co/auth/v1`); a `service_role` key may also carry the
//! issuer of Supabase's legacy API keys (`supabase`, or `supabase-demo` from the local CLI),
//! with the project's `ref` when it names one.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::jwks::{JwksCache, JwksError};

/// Clock skew allowed on `exp` and `nbf`, as Supabase's own libraries allow a little.
const LEEWAY_SECS: u64 = 30;

/// Who the token says is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A signed-in user (`role: authenticated`): may get or create their own customer only.
    User(Uuid),
    /// The project's `service_role` (a backend): may name any user.
    ServiceRole,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    /// Missing, malformed, expired, badly signed, for another audience, an unknown key: 401.
    /// The reason is for the log and the metrics, not the caller.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// A valid token of a role that may not call (`anon`, or none): 403.
    #[error("the token's role may not call this endpoint")]
    Forbidden,
    /// The JWKS could not be fetched and the key is not cached: 503, retry.
    #[error(transparent)]
    KeysUnavailable(#[from] JwksError),
}

/// The claims read from a verified token. `exp` is required AS A NUMBER here: a token whose
/// `exp` is of another type fails to decode rather than passing as "no expiry".
#[derive(Debug, Deserialize)]
struct Claims {
    #[allow(dead_code)] // checked by jsonwebtoken (validate_exp); typed here to be required
    exp: i64,
    /// Typed for the same reason: a `nbf` of another type would be skipped by jsonwebtoken.
    #[allow(dead_code)] // checked by jsonwebtoken (validate_nbf)
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    /// The project ref of a legacy API key (`service_role`, `anon`).
    #[serde(default, rename = "ref")]
    project_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(aud) => aud == wanted,
            Self::Many(auds) => auds.iter().any(|a| a == wanted),
        }
    }
}

/// The issuer the project's tokens must name: `<SUPABASE_URL>/auth/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issuer {
    url: String,
    /// `<ref>` of `https://<ref>.supabase.co`, when the project is hosted by Supabase.
    project_ref: Option<String>,
}

impl Issuer {
    /// The issuer of the project at `project_url` (`https://<ref>.supabase.co`).
    pub(crate) fn of_project(project_url: &reqwest::Url) -> Self {
        let url = format!("{}/auth/v1", project_url.as_str().trim_end_matches('/'));
        let project_ref = project_url
            .host_str()
            .and_then(|host| host.strip_suffix(".supabase.co"))
            .filter(|r| !r.is_empty() && !r.contains('.'))
            .map(str::to_owned);
        Self { url, project_ref }
    }

    /// The issuer of the project whose JWKS is at `jwks_url`, when it has Supabase's form
    /// (`…/auth/v1/.well-known/jwks.json`).
    pub(crate) fn of_jwks_url(jwks_url: &reqwest::Url) -> Option<Self> {
        if jwks_url.query().is_some() || jwks_url.fragment().is_some() {
            return None;
        }
        let base = jwks_url
            .as_str()
            .strip_suffix("/auth/v1/.well-known/jwks.json")?;
        let project_url = reqwest::Url::parse(base).ok()?;
        Some(Self::of_project(&project_url))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.url
    }

    /// Whether a token of `role` may carry `iss` (and `project_ref`).
    fn accepts(&self, role: Option<&str>, iss: Option<&str>, project_ref: Option<&str>) -> bool {
        if iss == Some(self.url.as_str()) {
            return true;
        }
        // Supabase's legacy API keys: signed with the project's secret, issuer "supabase".
        let legacy_key = matches!(iss, Some("supabase" | "supabase-demo"));
        let same_project = match (&self.project_ref, project_ref) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        role == Some("service_role") && legacy_key && same_project
    }
}

/// Verifies tokens with what the project configured: the HS256 secret, the JWKS, or both.
pub(crate) struct TokenVerifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    /// `None`: the project's URL is unknown, and `iss` is not checked.
    issuer: Option<Issuer>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("hs256", &self.hs256.as_ref().map(|_| "[redacted]"))
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl TokenVerifier {
    pub(crate) fn new(
        secret: Option<&SecretString>,
        jwks: Option<JwksCache>,
        issuer: Option<Issuer>,
    ) -> Self {
        Self {
            // Supabase signs with the secret's UTF-8 bytes, as written (not base64-decoded).
            hs256: secret.map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes())),
            jwks,
            issuer,
        }
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Invalid("malformed"))?;
        let (key, algorithm) = match header.alg {
            Algorithm::HS256 => {
                let key = self
                    .hs256
                    .clone()
                    .ok_or(TokenError::Invalid("HS256 but no SUPABASE_JWT_SECRET"))?;
                (key, Algorithm::HS256)
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or(TokenError::Invalid("asymmetric but no SUPABASE_JWKS_URL"))?;
                let kid = header.kid.as_deref().ok_or(TokenError::Invalid("no kid"))?;
                let (key, algorithm) = jwks
                    .key(kid)
                    .await?
                    .ok_or(TokenError::Invalid("unknown kid"))?;
                if algorithm != header.alg {
                    return Err(TokenError::Invalid("alg differs from the key's"));
                }
                (key, algorithm)
            }
            _ => return Err(TokenError::Invalid("unsupported alg")),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // The audience depends on the role (service_role keys carry none): checked below.
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::from(["exp".to_owned()]);
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                TokenError::Invalid(match error.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::ImmatureSignature => "not yet valid",
                    ErrorKind::InvalidSignature => "bad signature",
                    _ => "malformed",
                })
            })?
            .claims;
        if let Some(issuer) = &self.issuer
            && !issuer.accepts(
                claims.role.as_deref(),
                claims.iss.as_deref(),
                claims.project_ref.as_deref(),
            )
        {
            return Err(TokenError::Invalid("another issuer"));
        }
        caller_of(&claims)
    }
}

fn caller_of(claims: &Claims) -> Result<Caller, TokenError> {
    match claims.role.as_deref() {
        Some("authenticated") => {
            if !claims
                .aud
                .as_ref()
                .is_some_and(|aud| aud.contains("authenticated"))
            {
                return Err(TokenError::Invalid("wrong audience"));
            }
            let sub = claims.sub.as_deref().ok_or(TokenError::Invalid("no sub"))?;
            Uuid::try_parse(sub)
                .map(Caller::User)
                .map_err(|_| TokenError::Invalid("sub is not a user id"))
        }
        Some("service_role") => Ok(Caller::ServiceRole),
        _ => Err(TokenError::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(Some(&SecretString::from(SECRET)), None, None)
    }

    fn hs256(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn in_an_hour() -> i64 {
        chrono::Utc::now().timestamp() + 3600
    }

    async fn verify(token: &str) -> Result<Caller, TokenError> {
        verifier().verify(token).await
    }

    #[tokio::test]
    async fn a_users_token_names_the_user() {
        let user = Uuid::new_v4();
        let token = hs256(json!({
            "sub": user, "role": "authenticated", "aud": "authenticated", "exp": in_an_hour()
        }));
        assert_eq!(verify(&token).await.unwrap(), Caller::User(user));
    }

    #[tokio::test]
    async fn a_service_role_key_has_no_audience_and_may_name_anyone() {
        let token = hs256(json!({"iss": "supabase", "role": "service_role", "exp": in_an_hour()}));
        assert_eq!(verify(&token).await.unwrap(), Caller::ServiceRole);
    }

    #[tokio::test]
    async fn anon_and_roleless_tokens_are_forbidden() {
        for claims in [
            json!({"role": "anon", "exp": in_an_hour()}),
            json!({"sub": Uuid::new_v4(), "exp": in_an_hour()}),
        ] {
            assert!(matches!(
                verify(&hs256(claims)).await,
                Err(TokenError::Forbidden)
            ));
        }
    }

    #[tokio::test]
    async fn tokens_that_prove_nothing_are_invalid() {
        let user = Uuid::new_v4();
        let cases = [
            (
                json!({"sub": user, "role": "authenticated", "aud": "authenticated", "exp": 1_000}),
                "expired",
            ),
            (
                json!({"sub": user, "role": "authenticated", "aud": "other", "exp": in_an_hour()}),
                "wrong audience",
            ),
            (
                json!({"sub": "not-a-uuid", "role": "authenticated", "aud": "authenticated",
                       "exp": in_an_hour()}),
                "sub is not a user id",
            ),
            (
                json!({"sub": user, "role": "authenticated", "aud": "authenticated"}),
                "malformed",
            ),
            (
                json!({"sub": user, "role": "authenticated", "aud": "authenticated",
                       "exp": in_an_hour().to_string()}),
                "malformed",
            ),
        ];
        for (claims, reason) in cases {
            match verify(&hs256(claims.clone())).await {
                Err(TokenError::Invalid(got)) => assert_eq!(got, reason, "{claims}"),
                other => panic!("{claims}: {other:?}"),
            }
        }
        let other_secret = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": user, "role": "authenticated", "aud": "authenticated",
                    "exp": in_an_hour()}),
            &EncodingKey::from_secret(b"another-secret-another-secret-another"),
        )
        .unwrap();
        assert!(matches!(
            verify(&other_secret).await,
            Err(TokenError::Invalid("bad signature"))
        ));
        assert!(matches!(
            verify("not.a.token").await,
            Err(TokenError::Invalid("malformed"))
        ));
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        // {"alg":"none","typ":"JWT"} . {"role":"service_role","exp":4102444800}
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
                        eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ";
        for token in [format!("{unsigned}."), unsigned.to_owned()] {
            assert!(matches!(
                verify(&token).await,
                Err(TokenError::Invalid("malformed"))
            ));
        }
    }

    #[tokio::test]
    async fn an_hs256_token_is_refused_where_only_a_jwks_is_configured() {
        let verifier = TokenVerifier::new(None, None, None);
        let token = hs256(json!({"role": "service_role", "exp": in_an_hour()}));
        assert!(matches!(
            verifier.verify(&token).await,
            Err(TokenError::Invalid("HS256 but no SUPABASE_JWT_SECRET"))
        ));
    }
}
