//! The settings of `POST /customers` and `ensure-customer`: how tokens are verified, which
//! browser origins may call; and `PROFILE_NAME_COLUMN`, where a user's name is read
//! ([`ProfileArgs`], which `serve` and `ensure-customer` both flatten).

use std::fmt;
use std::time::Duration;

use clap::Args;
use reqwest::Url;
use secrecy::SecretString;

use super::{ConfigError, is_loopback};
use crate::auth::jwt::Issuer;
use crate::domain::ColumnName;

/// Where a user's name comes from: for a new customer (`POST /customers`, `ensure-customer`)
/// and for the profile push in `serve`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ProfileArgs {
    /// Column of public.profiles (keyed by the user id) that holds the user's name, given to
    /// Stripe as the customer's name; ignored where the table or column does not exist or this
    /// login may not read it.
    #[arg(
        long,
        env = "PROFILE_NAME_COLUMN",
        default_value = "full_name",
        value_name = "COLUMN"
    )]
    pub profile_name_column: String,
}

impl ProfileArgs {
    pub(crate) fn column(&self) -> Result<ColumnName, ConfigError> {
        ColumnName::parse(&self.profile_name_column)
            .map_err(|e| ConfigError::new("PROFILE_NAME_COLUMN", e))
    }
}

/// `POST /customers`: on when STRIPE_API_KEY and a token setting are configured.
#[derive(Args, Clone)]
pub(crate) struct CustomersArgs {
    /// The project's legacy JWT secret: verifies HS256 access tokens on POST /customers.
    #[arg(
        long,
        env = "SUPABASE_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub supabase_jwt_secret: Option<String>,

    /// The project's JWKS (https://<ref>.supabase.co/auth/v1/.well-known/jwks.json): verifies
    /// RS256/ES256 access tokens on POST /customers; cached, refetched on an unknown key id.
    #[arg(long, env = "SUPABASE_JWKS_URL", value_name = "URL")]
    pub supabase_jwks_url: Option<String>,

    /// The project's URL (https://<ref>.supabase.co): tokens must be issued by
    /// <SUPABASE_URL>/auth/v1. Derived from SUPABASE_JWKS_URL when that has Supabase's form.
    #[arg(long, env = "SUPABASE_URL", value_name = "URL")]
    pub supabase_url: Option<String>,

    /// How long after their fetch the JWKS's keys may still verify tokens while the JWKS
    /// cannot be fetched again (a revoked key stays valid at most this long): 30m, 1h, …
    #[arg(
        long,
        env = "SUPABASE_JWKS_MAX_AGE",
        default_value = "1h",
        value_name = "DURATION"
    )]
    pub supabase_jwks_max_age: String,

    /// Browser origins allowed to call POST /customers (CORS), comma-separated, e.g.
    /// https://app.example.com,http://localhost:3000.
    #[arg(long, env = "ALLOWED_ORIGINS", value_name = "ORIGINS")]
    pub allowed_origins: Option<String>,
}

impl fmt::Debug for CustomersArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomersArgs")
            .field(
                "supabase_jwt_secret",
                &self.supabase_jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("supabase_jwks_url", &self.supabase_jwks_url)
            .field("supabase_url", &self.supabase_url)
            .field("supabase_jwks_max_age", &self.supabase_jwks_max_age)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

/// Validated settings of `POST /customers`.
#[derive(Clone)]
pub struct CustomerSettings {
    pub jwt_secret: Option<SecretString>,
    pub jwks_url: Option<Url>,
    /// Origins as browsers send them (`https://app.example.com`).
    pub allowed_origins: Vec<String>,
    /// The least time between two JWKS fetches caused by unknown key ids.
    pub jwks_min_refetch: Duration,
    /// How long after their fetch the JWKS's keys may verify when it cannot be fetched again.
    pub jwks_max_age: Duration,
    /// `SUPABASE_URL`: the project's URL, for the issuer tokens must name.
    pub project_url: Option<Url>,
}

impl fmt::Debug for CustomerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerSettings")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("jwks_url", &self.jwks_url.as_ref().map(Url::as_str))
            .field("project_url", &self.project_url.as_ref().map(Url::as_str))
            .field("jwks_max_age", &self.jwks_max_age)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

impl Default for CustomerSettings {
    /// Off: no token setting.
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwks_url: None,
            allowed_origins: Vec::new(),
            jwks_min_refetch: crate::auth::jwks::MIN_REFETCH,
            jwks_max_age: crate::auth::jwks::DEFAULT_MAX_AGE,
            project_url: None,
        }
    }
}

/// Supabase's JWT secrets are 32 characters or more (its dashboard refuses shorter ones).
const MIN_SECRET_LEN: usize = 32;

impl CustomerSettings {
    pub(crate) fn from_args(args: &CustomersArgs) -> Result<Self, ConfigError> {
        let jwt_secret = match args.supabase_jwt_secret.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(secret) if secret.len() < MIN_SECRET_LEN => {
                return Err(ConfigError::new(
                    "SUPABASE_JWT_SECRET",
                    "is shorter than a Supabase JWT secret (32 characters or more; Project \
                     Settings → API → JWT secret)",
                ));
            }
            Some(secret) => Some(SecretString::from(secret.to_owned())),
        };
        let jwks_url = match args.supabase_jwks_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(https_url("SUPABASE_JWKS_URL", raw)?),
        };
        let project_url = match args.supabase_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(project_url(raw)?),
        };
        let jwks_max_age = match crate::domain::parse_duration(&args.supabase_jwks_max_age) {
            Ok(age) if !age.is_zero() => age,
            Ok(_) => {
                return Err(ConfigError::new(
                    "SUPABASE_JWKS_MAX_AGE",
                    "must be above 0 (the keys would never verify)",
                ));
            }
            Err(e) => return Err(ConfigError::new("SUPABASE_JWKS_MAX_AGE", e)),
        };
        let allowed_origins = match args.allowed_origins.as_deref() {
            None => Vec::new(),
            Some(raw) => origins(raw)?,
        };
        Ok(Self {
            jwt_secret,
            jwks_url,
            allowed_origins,
            jwks_min_refetch: crate::auth::jwks::MIN_REFETCH,
            jwks_max_age,
            project_url,
        })
    }

    /// The issuer tokens must name: `<SUPABASE_URL>/auth/v1`, or derived from a JWKS URL of
    /// Supabase's form; `None`: unknown, and `iss` is not checked.
    pub(crate) fn issuer(&self) -> Option<Issuer> {
        match &self.project_url {
            Some(url) => Some(Issuer::of_project(url)),
            None => self.jwks_url.as_ref().and_then(Issuer::of_jwks_url),
        }
    }

    /// A way to verify tokens is configured.
    pub(crate) fn verifies_tokens(&self) -> bool {
        self.jwt_secret.is_some() || self.jwks_url.is_some()
    }
}

/// The project's URL: https (or http to this machine), nothing after the host but a `/`.
fn project_url(raw: &str) -> Result<Url, ConfigError> {
    const VARIABLE: &str = "SUPABASE_URL";
    let url = https_url(VARIABLE, raw)?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            VARIABLE,
            "must be the project's URL alone, such as https://<ref>.supabase.co",
        ));
    }
    Ok(url)
}

/// https, or plain http to this machine only (a local Supabase, a test double).
fn https_url(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    const VARIABLE: &str = "SUPABASE_JWKS_URL";
    let example = if variable == VARIABLE {
        "https://<ref>.supabase.co/auth/v1/.well-known/jwks.json"
    } else {
        "https://<ref>.supabase.co"
    };
    let url = Url::parse(raw).map_err(|_| {
        ConfigError::new(
            variable,
            format!("must be an absolute URL such as {example}"),
        )
    })?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ConfigError::new(
            variable,
            "must use https (plain http only to localhost): what is fetched in clear can be forged",
        )),
        _ => Err(ConfigError::new(variable, "must be an https URL")),
    }
}

/// Comma-separated origins, each `scheme://host[:port]` as a browser sends it in `Origin`.
fn origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    const VARIABLE: &str = "ALLOWED_ORIGINS";
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            if origin == "*" {
                return Err(ConfigError::new(
                    VARIABLE,
                    "must list the app's origins; * would let any site call with a user's token",
                ));
            }
            let url = Url::parse(origin)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .filter(|url| url.host().is_some() && url.username().is_empty())
                .filter(|url| url.path() == "/" && url.query().is_none())
                .filter(|url| url.fragment().is_none() && !origin.ends_with('/'))
                .ok_or_else(|| {
                    ConfigError::new(
                        VARIABLE,
                        format!(
                            "{origin:?} is not an origin such as https://app.example.com \
                             (scheme, host and port only)"
                        ),
                    )
                })?;
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        customers: CustomersArgs,
    }

    fn parse(args: &[&str]) -> Result<CustomerSettings, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .expect("clap parses");
        CustomerSettings::from_args(&cli.customers)
    }

    #[test]
    fn off_without_a_token_setting() {
        let settings = parse(&[]).unwrap();
        assert!(!settings.verifies_tokens());
        assert!(settings.allowed_origins.is_empty());
    }

    #[test]
    fn origins_are_kept_as_browsers_send_them() {
        let settings = parse(&[
            "--allowed-origins=https://app.example.com, http://localhost:3000,https://x.io:443",
            "--supabase-jwks-url=https://abc.supabase.co/auth/v1/.well-known/jwks.json",
        ])
        .unwrap();
        assert!(settings.verifies_tokens());
        assert_eq!(
            settings.allowed_origins,
            [
                "https://app.example.com",
                "http://localhost:3000",
                "https://x.io"
            ]
        );
    }

    #[test]
    fn each_bad_value_names_its_variable_and_never_echoes_the_secret() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--supabase-jwt-secret=Short-Secret"],
                "SUPABASE_JWT_SECRET",
            ),
            (&["--supabase-jwks-url=jwks.json"], "SUPABASE_JWKS_URL"),
            (
                &["--supabase-jwks-url=http://abc.supabase.co/jwks.json"],
                "SUPABASE_JWKS_URL",
            ),
            (&["--allowed-origins=*"], "ALLOWED_ORIGINS"),
            (
                &["--allowed-origins=https://app.example.com/path"],
                "ALLOWED_ORIGINS",
            ),
            (&["--allowed-origins=app.example.com"], "ALLOWED_ORIGINS"),
            (&["--supabase-url=abc.supabase.co"], "SUPABASE_URL"),
            (&["--supabase-url=http://abc.supabase.co"], "SUPABASE_URL"),
            (
                &["--supabase-url=https://abc.supabase.co/auth/v1"],
                "SUPABASE_URL",
            ),
            (&["--supabase-jwks-max-age=0"], "SUPABASE_JWKS_MAX_AGE"),
            (&["--supabase-jwks-max-age=1 hour"], "SUPABASE_JWKS_MAX_AGE"),
        ];
        for (args, variable) in cases {
            let error = parse(args).unwrap_err();
            assert_eq!(error.variable, *variable, "{args:?}");
            assert!(!error.to_string().contains("Short-Secret"), "{error}");
        }
    }

    #[test]
    fn the_issuer_comes_from_supabase_url_or_a_jwks_url_of_supabases_form() {
        let issuer = |args: &[&str]| {
            parse(args)
                .unwrap()
                .issuer()
                .map(|issuer| issuer.as_str().to_owned())
        };
        let jwks = "--supabase-jwks-url=https://abc.supabase.co/auth/v1/.well-known/jwks.json";
        let expected = Some("https://abc.supabase.co/auth/v1".to_owned());
        assert_eq!(
            issuer(&["--supabase-url=https://abc.supabase.co/"]),
            expected
        );
        assert_eq!(
            issuer(&["--supabase-url=https://abc.supabase.co"]),
            expected
        );
        assert_eq!(issuer(&[jwks]), expected);
        assert_eq!(
            issuer(&["--supabase-url=http://127.0.0.1:54321", jwks]),
            Some("http://127.0.0.1:54321/auth/v1".to_owned()),
            "SUPABASE_URL wins"
        );
        assert_eq!(
            issuer(&["--supabase-jwks-url=http://127.0.0.1:9/jwks.json"]),
            None
        );
        assert_eq!(issuer(&[]), None);
    }

    #[test]
    fn cached_keys_are_trusted_an_hour_by_default() {
        assert_eq!(parse(&[]).unwrap().jwks_max_age, Duration::from_secs(3600));
        let settings = parse(&["--supabase-jwks-max-age=15m"]).unwrap();
        assert_eq!(settings.jwks_max_age, Duration::from_secs(900));
    }
}
