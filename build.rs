// `sqlx::migrate!` embeds `migrations/` at compile time; without this, a migration added or
// edited since the last build would not be seen until some Rust file changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
