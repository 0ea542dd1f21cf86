//! `healthcheck`: exit 0 when the service answers `GET /healthz` (container health checks).

use std::process::ExitCode;

use super::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct HealthcheckArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    url: String,
}

pub(crate) async fn command(args: HealthcheckArgs) -> Result<ExitCode, CliError> {
    let url = args.url.as_str();
    let response = reqwest::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| CliError::failed(url, e))?;
    if !response.status().is_success() {
        return Err(CliError::failed(url, response.status()));
    }
    Ok(ExitCode::SUCCESS)
}
