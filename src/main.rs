fn main() -> std::process::ExitCode {
    stripe_customer_sync::cli::run()
}
