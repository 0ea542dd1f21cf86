//! How `serve` guards its HTTP side: the deadlines of a request's head and body
//! (`REQUEST_HEAD_TIMEOUT`, `REQUEST_BODY_TIMEOUT`), and where `/metrics` is served
//! (`METRICS_ADDR`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::ConfigError;

#[derive(Args, Debug, Clone)]
pub(crate) struct HttpArgs {
    /// How long a client may take to send a request's head (request line and headers) once
    /// connected: 5s, 10s, … A slower one gets 408 and its connection is closed.
    #[arg(
        long,
        env = "REQUEST_HEAD_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub request_head_timeout: String,

    /// How long a client may take to send a request's body once its head is in: 5s, 10s, …
    /// A slower one gets 408 `request_timeout` and its connection is closed.
    #[arg(
        long,
        env = "REQUEST_BODY_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub request_body_timeout: String,

    /// Serve GET /metrics on this address (e.g. 127.0.0.1:9090, a private interface) and not
    /// on LISTEN_ADDR.
    #[arg(long, env = "METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}

/// The validated settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// A request's head must be in within this, from the connection's first read.
    pub head_timeout: Duration,
    /// A request's body must be in within this, from the moment its head is.
    pub body_timeout: Duration,
    /// `/metrics` on this address alone; `None`: on the public one.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            metrics_addr: None,
        }
    }
}

impl HttpSettings {
    pub(crate) fn from_args(args: &HttpArgs) -> Result<Self, ConfigError> {
        let positive = |variable: &'static str, raw: &str| match crate::domain::parse_duration(raw)
        {
            Ok(duration) if !duration.is_zero() => Ok(duration),
            Ok(_) => Err(ConfigError::new(
                variable,
                "must be above 0 (a client that never finishes would hold its connection)",
            )),
            Err(e) => Err(ConfigError::new(variable, e)),
        };
        let metrics_addr = match args.metrics_addr.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(raw.parse().map_err(|_| {
                ConfigError::new(
                    "METRICS_ADDR",
                    "must be an address and port such as 127.0.0.1:9090",
                )
            })?),
        };
        Ok(Self {
            head_timeout: positive("REQUEST_HEAD_TIMEOUT", &args.request_head_timeout)?,
            body_timeout: positive("REQUEST_BODY_TIMEOUT", &args.request_body_timeout)?,
            metrics_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        http: HttpArgs,
    }

    fn parse(args: &[&str]) -> Result<HttpSettings, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .expect("clap parses");
        HttpSettings::from_args(&cli.http)
    }

    #[test]
    fn defaults_give_every_request_a_few_seconds_and_metrics_on_the_public_port() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.head_timeout, Duration::from_secs(5));
        assert_eq!(settings.body_timeout, Duration::from_secs(5));
        assert_eq!(settings.metrics_addr, None);
    }

    #[test]
    fn values_are_read() {
        let settings = parse(&[
            "--request-head-timeout=2s",
            "--request-body-timeout=1m",
            "--metrics-addr=127.0.0.1:9090",
        ])
        .unwrap();
        assert_eq!(settings.head_timeout, Duration::from_secs(2));
        assert_eq!(settings.body_timeout, Duration::from_secs(60));
        assert_eq!(
            settings.metrics_addr,
            Some("127.0.0.1:9090".parse().unwrap())
        );
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases: &[(&str, &str)] = &[
            ("--request-head-timeout=0", "REQUEST_HEAD_TIMEOUT"),
            ("--request-head-timeout=5", "REQUEST_HEAD_TIMEOUT"),
            ("--request-body-timeout=0", "REQUEST_BODY_TIMEOUT"),
            ("--request-body-timeout=soon", "REQUEST_BODY_TIMEOUT"),
            ("--metrics-addr=localhost", "METRICS_ADDR"),
        ];
        for (arg, variable) in cases {
            assert_eq!(parse(&[arg]).unwrap_err().variable, *variable, "{arg}");
        }
    }
}
