//! Stripe's API: `STRIPE_API_KEY` (whose mode it reads) and `STRIPE_API_BASE`.

use std::fmt;

use clap::Args;
use reqwest::Url;
use secrecy::SecretString;

use super::{ConfigError, is_loopback};
use crate::domain::StripeMode;

/// Stripe's API, for what reads customers or events from it (`backfill`, `verify`,
/// `catch-up`, and in `serve` thin events and the background catch-up).
#[derive(Args, Clone)]
pub struct StripeApiArgs {
    /// Secret (`sk_…`) or restricted (`rk_…`) key with read access to customers. Prefer the
    /// environment variable: a flag is visible in the process list.
    #[arg(
        long,
        env = "STRIPE_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub stripe_api_key: Option<String>,

    /// Stripe API base URL: https; plain http too for a test-mode key (a Stripe mock such as
    /// `http://stripe-mock:12111`) or to localhost. A live key goes over https only.
    #[arg(
        long,
        env = "STRIPE_API_BASE",
        default_value = DEFAULT_STRIPE_API_BASE,
        value_name = "URL"
    )]
    pub stripe_api_base: String,
}

impl fmt::Debug for StripeApiArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeApiArgs")
            .field(
                "stripe_api_key",
                &self.stripe_api_key.as_ref().map(|_| "[redacted]"),
            )
            .field("stripe_api_base", &self.stripe_api_base)
            .finish()
    }
}

const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";

/// Validated access to Stripe's API. The key is a [`SecretString`]: it never shows in Debug.
#[derive(Clone)]
pub struct StripeApiSettings {
    pub key: SecretString,
    /// The key's mode: what it reads is live or test data.
    pub mode: StripeMode,
    /// Ends with `/`, so that `v1/customers` joins onto it.
    pub base: Url,
}

impl fmt::Debug for StripeApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeApiSettings")
            .field("key", &"[redacted]")
            .field("base", &self.base.as_str())
            .finish()
    }
}

impl StripeApiSettings {
    pub(crate) fn from_args(args: &StripeApiArgs) -> Result<Self, ConfigError> {
        let (key, mode) = stripe_api_key(args.stripe_api_key.as_deref())?;
        Ok(Self {
            key,
            mode,
            base: stripe_api_base(&args.stripe_api_base, Some(mode))?,
        })
    }

    /// For `serve`, where the key is optional: `None` without one (STRIPE_API_BASE is still
    /// checked, so a typo shows before the key is added).
    pub(crate) fn optional(args: &StripeApiArgs) -> Result<Option<Self>, ConfigError> {
        match args.stripe_api_key.as_deref().map(str::trim) {
            None | Some("") => stripe_api_base(&args.stripe_api_base, None).map(|_| None),
            Some(_) => Self::from_args(args).map(Some),
        }
    }
}

/// Accepts secret and restricted keys only; no error repeats the key, or any part of it.
fn stripe_api_key(raw: Option<&str>) -> Result<(SecretString, StripeMode), ConfigError> {
    const VARIABLE: &str = "STRIPE_API_KEY";
    let key = raw.map(str::trim).unwrap_or_default();
    if key.is_empty() {
        return Err(ConfigError::new(
            VARIABLE,
            "required: a secret (sk_…) or restricted (rk_…) key with read access to customers",
        ));
    }
    if key.starts_with("pk_") {
        return Err(ConfigError::new(
            VARIABLE,
            "is a publishable key (pk_…), which cannot read customers; use a secret (sk_…) or \
             restricted (rk_…) key",
        ));
    }
    if !(key.starts_with("sk_") || key.starts_with("rk_")) {
        return Err(ConfigError::new(
            VARIABLE,
            "must be a secret (sk_…) or restricted (rk_…) key",
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ConfigError::new(
            VARIABLE,
            "holds characters a Stripe key never has",
        ));
    }
    let mode = StripeMode::of_api_key(key).ok_or_else(|| {
        ConfigError::new(
            VARIABLE,
            "must be a live (sk_live_…, rk_live_…) or test (sk_test_…, rk_test_…) key",
        )
    })?;
    Ok((SecretString::from(key.to_owned()), mode))
}

/// https; or plain http to this machine, or anywhere with a test-mode key (a Stripe mock in
/// a compose file, `http://stripe-mock:12111`): a test key reaches no real money and no real
/// customer, while a live key in clear would. `mode`: the key's, `None` without one (nothing
/// travels).
fn stripe_api_base(raw: &str, mode: Option<StripeMode>) -> Result<Url, ConfigError> {
    const VARIABLE: &str = "STRIPE_API_BASE";
    let mut url = Url::parse(raw.trim()).map_err(|_| {
        ConfigError::new(
            VARIABLE,
            "must be an absolute URL such as https://api.stripe.com",
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) || mode != Some(StripeMode::Live) => {}
        "http" => {
            return Err(ConfigError::new(
                VARIABLE,
                "must use https with a live key (plain http only to localhost, or with a test \
                 key): the key would travel in clear",
            ));
        }
        _ => {
            return Err(ConfigError::new(
                VARIABLE,
                "must be an http(s) URL such as https://api.stripe.com",
            ));
        }
    }
    if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            VARIABLE,
            "must be a base URL without query or fragment, such as https://api.stripe.com",
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}
