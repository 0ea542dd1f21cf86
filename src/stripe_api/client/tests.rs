use std::time::Duration;

use reqwest::Url;

use super::*;

#[test]
fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
    crate::tls::install_crypto_provider();
    let settings = StripeApiSettings {
        key: "sk_test_x".to_owned().into(),
        mode: crate::domain::StripeMode::Test,
        base: Url::parse("https://api.stripe.com/").unwrap(),
    };
    let client = StripeClient::new(&settings, RetryPolicy::default()).unwrap();
    for retries in 0..12 {
        let wait = client.backoff(retries);
        let full = Duration::from_millis(500)
            .saturating_mul(1 << retries)
            .min(Duration::from_secs(16));
        assert!(wait >= full / 2 && wait <= full, "{retries}: {wait:?}");
    }
    let url = client
        .url(
            &["v1", "customers"],
            &[("limit", "100"), ("starting_after", "cus_A")],
        )
        .unwrap();
    assert_eq!(
        url.as_str(),
        "https://api.stripe.com/v1/customers?limit=100&starting_after=cus_A"
    );
    assert!(!format!("{client:?}").contains("sk_test"));
}
