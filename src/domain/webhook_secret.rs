//! Stripe endpoint signing secrets and the signature time window, valid once parsed.
//!
//! A bad value stops start-up with one line naming the setting; the secret itself never appears in
//! an error, `Debug` output or a log line.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

const PREFIX: &str = "whsec_";

/// Why a webhook secret was refused. Messages never contain the value; the caller names
/// the setting it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("no secret given")]
    Empty,
    #[error("an item of the comma-separated list is empty")]
    EmptyItem,
    #[error("a secret must not contain whitespace")]
    Whitespace,
    #[error("each secret must start with whsec_")]
    MissingPrefix,
    #[error("a secret has nothing after whsec_")]
    NothingAfterPrefix,
    #[error(
        "a secret is a placeholder, not the endpoint's signing secret (Dashboard → Webhooks, \
         or the one `stripe listen` prints)"
    )]
    Placeholder,
}

/// What example files and documentation put where a secret belongs. A real secret is random
/// base64 after `whsec_` and holds none of these.
const PLACEHOLDERS: [&str; 8] = [
    "replace_me",
    "replaceme",
    "changeme",
    "change_me",
    "your_",
    "placeholder",
    "xxxxxx",
    "...",
];

/// One endpoint signing secret (`whsec_…`).
///
/// Stripe keys the HMAC with the UTF-8 bytes of the whole string, prefix included, so it is kept
/// as given rather than decoded.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

impl WebhookSecret {
    pub fn parse(s: &str) -> Result<Self, WebhookSecretError> {
        if s.is_empty() {
            return Err(WebhookSecretError::Empty);
        }
        // Checked before the prefix: " whsec_…" is a copy-paste slip, and saying so helps more
        // than "must start with whsec_".
        if s.chars().any(char::is_whitespace) {
            return Err(WebhookSecretError::Whitespace);
        }
        match s.strip_prefix(PREFIX) {
            None => Err(WebhookSecretError::MissingPrefix),
            Some("") => Err(WebhookSecretError::NothingAfterPrefix),
            Some(rest) if is_placeholder(rest) => Err(WebhookSecretError::Placeholder),
            Some(_) => Ok(Self(SecretString::from(s))),
        }
    }

    /// The whole secret, prefix included: the HMAC key. Keep it out of logs.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

fn is_placeholder(after_prefix: &str) -> bool {
    let lower = after_prefix.to_ascii_lowercase();
    PLACEHOLDERS.iter().any(|p| lower.contains(p))
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_…redacted)")
    }
}

impl FromStr for WebhookSecret {
    type Err = WebhookSecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Every secret the endpoint accepts: during a roll Stripe signs with each active secret, and
/// `stripe listen` has its own, so several may be configured at once. Never empty.
#[derive(Clone, Debug)]
pub struct WebhookSecrets(Vec<WebhookSecret>);

impl WebhookSecrets {
    /// Parses `whsec_a,whsec_b`. Spaces around an item are trimmed (values pasted into
    /// environment files often carry them); an empty item is refused rather than skipped, since
    /// `whsec_a,,whsec_b` more likely lost a secret than gained a comma.
    pub fn parse(comma_separated: &str) -> Result<Self, WebhookSecretError> {
        if comma_separated.trim().is_empty() {
            return Err(WebhookSecretError::Empty);
        }
        comma_separated
            .split(',')
            .map(|item| match item.trim() {
                "" => Err(WebhookSecretError::EmptyItem),
                item => WebhookSecret::parse(item),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &WebhookSecret> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false (there is at least one secret); present because clippy expects it beside
    /// `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for WebhookSecrets {
    type Err = WebhookSecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'a> IntoIterator for &'a WebhookSecrets {
    type Item = &'a WebhookSecret;
    type IntoIter = std::slice::Iter<'a, WebhookSecret>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Refused `STRIPE_WEBHOOK_TOLERANCE_SECS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be at least 1 second (0 would disable the replay check)")]
pub struct SignatureToleranceError;

/// How far a signature's timestamp may be from now, in either direction.
///
/// Stripe's own libraries treat 0 as "no check at all"; here that would silently accept replays
/// of any old delivery, so 0 (and anything negative) is refused instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureTolerance(u32);

impl SignatureTolerance {
    /// Stripe's default, kept so the behaviour matches what Stripe documents.
    pub const DEFAULT_SECS: u32 = 300;

    pub fn parse(secs: i64) -> Result<Self, SignatureToleranceError> {
        match u32::try_from(secs) {
            Ok(secs) if secs > 0 => Ok(Self(secs)),
            // Too large for u32 (over a century) is as meaningless as 0: the check would be off.
            _ => Err(SignatureToleranceError),
        }
    }

    pub fn as_secs(&self) -> i64 {
        i64::from(self.0)
    }

    pub fn as_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

impl Default for SignatureTolerance {
    fn default() -> Self {
        Self(Self::DEFAULT_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_Zm9vYmFyYmF6c2VjcmV0";

    #[test]
    fn secret_with_prefix_and_body_is_accepted_as_given() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(secret.expose(), SECRET);
    }

    #[test]
    fn empty_secret_is_refused() {
        assert_eq!(
            WebhookSecret::parse("").unwrap_err(),
            WebhookSecretError::Empty
        );
    }

    #[test]
    fn secret_without_whsec_prefix_is_refused() {
        for s in ["sk_test_123", "WHSEC_abc", "whsec", "abc_whsec_abc"] {
            assert_eq!(
                WebhookSecret::parse(s).unwrap_err(),
                WebhookSecretError::MissingPrefix,
                "{s}"
            );
        }
    }

    #[test]
    fn secret_with_whitespace_anywhere_is_refused() {
        for s in [
            " whsec_abc",
            "whsec_abc ",
            "whsec_a bc",
            "whsec_abc\n",
            "whsec_\tabc",
        ] {
            assert_eq!(
                WebhookSecret::parse(s).unwrap_err(),
                WebhookSecretError::Whitespace,
                "{s:?}"
            );
        }
    }

    #[test]
    fn secret_with_nothing_after_prefix_is_refused() {
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            WebhookSecretError::NothingAfterPrefix
        );
    }

    #[test]
    fn placeholder_secrets_of_example_files_are_refused() {
        for placeholder in [
            "whsec_replace_me",
            "whsec_CHANGEME",
            "whsec_your_signing_secret",
            "whsec_xxxxxxxxxxxx",
            "whsec_...",
        ] {
            assert_eq!(
                WebhookSecret::parse(placeholder).err(),
                Some(WebhookSecretError::Placeholder),
                "{placeholder}"
            );
        }
        assert!(WebhookSecret::parse("whsec_4eC39HqLyjWDarjtT1zdp7dcXk2Rb").is_ok());
    }

    #[test]
    fn secret_debug_does_not_reveal_the_secret() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret(whsec_…redacted)");
        let secrets = WebhookSecrets::parse(SECRET).unwrap();
        assert!(!format!("{secrets:?}").contains("Zm9v"));
        assert!(!format!("{secrets:#?}").contains("Zm9v"));
    }

    #[test]
    fn errors_never_contain_the_value() {
        let bad = [
            "sk_live_Zm9vsecret",
            "whsec_Zm9v secret",
            "whsec_Zm9v,,whsec_x",
        ];
        for value in bad {
            let message = WebhookSecrets::parse(value).unwrap_err().to_string();
            assert!(!message.contains("Zm9v"), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn secrets_list_keeps_every_secret_in_order() {
        let secrets = WebhookSecrets::parse("whsec_one,whsec_two").unwrap();
        assert_eq!(secrets.len(), 2);
        let exposed: Vec<_> = secrets.iter().map(WebhookSecret::expose).collect();
        assert_eq!(exposed, ["whsec_one", "whsec_two"]);
    }

    #[test]
    fn secrets_list_trims_spaces_around_items() {
        let secrets = WebhookSecrets::parse("  whsec_one , whsec_two\n").unwrap();
        let exposed: Vec<_> = secrets.iter().map(WebhookSecret::expose).collect();
        assert_eq!(exposed, ["whsec_one", "whsec_two"]);
    }

    #[test]
    fn secrets_list_of_one_is_accepted() {
        assert_eq!(WebhookSecrets::parse(SECRET).unwrap().len(), 1);
    }

    #[test]
    fn secrets_list_empty_or_blank_is_refused() {
        for s in ["", "   "] {
            assert_eq!(
                WebhookSecrets::parse(s).unwrap_err(),
                WebhookSecretError::Empty
            );
        }
    }

    #[test]
    fn secrets_list_with_empty_item_is_refused() {
        for s in [
            "whsec_a,,whsec_b",
            "whsec_a,",
            ",whsec_a",
            "whsec_a, ,whsec_b",
            ",",
        ] {
            assert_eq!(
                WebhookSecrets::parse(s).unwrap_err(),
                WebhookSecretError::EmptyItem,
                "{s:?}"
            );
        }
    }

    #[test]
    fn secrets_list_with_one_bad_item_is_refused() {
        assert_eq!(
            WebhookSecrets::parse("whsec_a,sk_test_b").unwrap_err(),
            WebhookSecretError::MissingPrefix
        );
        assert_eq!(
            WebhookSecrets::parse("whsec_a,whsec_b c").unwrap_err(),
            WebhookSecretError::Whitespace
        );
    }

    #[test]
    fn tolerance_defaults_to_stripes_300_seconds() {
        assert_eq!(SignatureTolerance::default().as_secs(), 300);
        assert_eq!(
            SignatureTolerance::default().as_duration(),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn tolerance_of_zero_or_negative_is_refused() {
        for secs in [0, -1, i64::MIN] {
            assert_eq!(
                SignatureTolerance::parse(secs).unwrap_err(),
                SignatureToleranceError
            );
        }
    }

    #[test]
    fn tolerance_too_large_to_mean_anything_is_refused() {
        assert!(SignatureTolerance::parse(i64::from(u32::MAX) + 1).is_err());
        assert!(SignatureTolerance::parse(i64::MAX).is_err());
    }

    #[test]
    fn tolerance_positive_is_kept() {
        assert_eq!(SignatureTolerance::parse(1).unwrap().as_secs(), 1);
        assert_eq!(SignatureTolerance::parse(600).unwrap().as_secs(), 600);
    }

    #[test]
    fn tolerance_error_is_one_line() {
        let message = SignatureToleranceError.to_string();
        assert!(!message.contains('\n'));
    }
}
