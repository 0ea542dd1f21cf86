//! Properties of `ALLOWED_ORIGINS` parsing, over any text: it never panics; what it accepts are
//! origins as browsers send them, which parse again to themselves; and any list of real origins,
//! however spaced, is accepted as those origins.

use proptest::prelude::*;

use super::customers::CustomersArgs;
use super::{ConfigError, CustomerSettings};
use crate::properties::{config, text};

fn origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    let args = CustomersArgs {
        supabase_jwt_secret: None,
        supabase_jwks_url: None,
        supabase_url: None,
        supabase_jwks_max_age: "1h".into(),
        allowed_origins: Some(raw.to_owned()),
    };
    CustomerSettings::from_args(&args).map(|settings| settings.allowed_origins)
}

/// An origin as a browser sends it: lower-case scheme and host, a port only when not the
/// scheme's default. The last label is a name (one of digits would make the host an IPv4
/// address, and an invalid one). No label starts with `xn--`: that marks a punycode label,
/// which must decode (the million-case run found `xn--a`, rightly refused as no host).
fn origin() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["http", "https"]),
        prop::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 0..3),
        "[a-z]{1,8}",
        prop::option::of(1u16..),
    )
        .prop_filter("not a punycode label", |(_, labels, _, _)| {
            !labels.iter().any(|label| label.starts_with("xn--"))
        })
        .prop_map(|(scheme, mut labels, last, port)| {
            labels.push(last);
            let default_port = if scheme == "http" { 80 } else { 443 };
            let port = port
                .filter(|port| *port != default_port)
                .map(|port| format!(":{port}"))
                .unwrap_or_default();
            format!("{scheme}://{}{port}", labels.join("."))
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parsing_never_panics_and_what_it_accepts_parses_again_to_itself(raw in text()) {
        if let Ok(accepted) = origins(&raw) {
            for origin in &accepted {
                prop_assert!(origin.starts_with("http://") || origin.starts_with("https://"));
                prop_assert!(!origin.ends_with('/'), "{}", origin);
            }
            prop_assert_eq!(origins(&accepted.join(",")).unwrap(), accepted);
        }
    }

    #[test]
    fn parsing_never_panics_on_lists_of_url_like_text(
        parts in prop::collection::vec("[a-zA-Z0-9:/.*@?#%\\[\\] -]{0,30}", 0..5),
    ) {
        let _ = origins(&parts.join(","));
    }

    #[test]
    fn a_list_of_origins_is_accepted_as_those_origins(
        list in prop::collection::vec((origin(), "[ \t]{0,2}", "[ \t]{0,2}"), 1..5),
        upper in any::<bool>(),
    ) {
        let raw = list
            .iter()
            .map(|(origin, before, after)| {
                let written = if upper { origin.to_uppercase() } else { origin.clone() };
                format!("{before}{written}{after}")
            })
            .collect::<Vec<_>>()
            .join(",");
        let expected: Vec<String> = list.into_iter().map(|(origin, _, _)| origin).collect();
        prop_assert_eq!(origins(&raw).unwrap(), expected);
    }
}
