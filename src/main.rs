// mimalloc rather than glibc's malloc: under load a webhook's buffers (the 2 KB body, its
// decoded event, the statement's arrays) are allocated on one thread and freed in bursts, and
// glibc's malloc took about a quarter of the service's CPU per event (perf, 16 senders).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stripe_customer_sync::cli::run()
}
