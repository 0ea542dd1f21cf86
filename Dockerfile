# syntax=docker/dockerfile:1
# Multi-stage build of stripe-customer-sync. Build with:  docker build -t stripe-customer-sync .

# --- planner / builder base: cargo-chef caches the dependency build in its own layer ----------
FROM lukemathwalker/cargo-chef:latest-rust-1.95-slim-bookworm AS chef
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# The same build CI checks (`cargo build --release --locked`); migrations are embedded.
RUN cargo build --release --locked --bin stripe-customer-sync

# --- runtime: slim, non-root, no compiler, no PostgreSQL ---------------------------------------
FROM debian:bookworm-slim AS runtime
# ca-certificates is left unpinned on purpose (DL3008): bookworm replaces, rather than keeps,
# the versions its security updates supersede, so a pin would break the build, not secure it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=builder /app/target/release/stripe-customer-sync /usr/local/bin/stripe-customer-sync
# Numeric, so that Kubernetes' runAsNonRoot can verify it is not root (hadolint DL3066).
USER 10001:10001
ENV LISTEN_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json \
    RUST_LOG=info \
    REQUIRE_DATABASE_URL=true
EXPOSE 8080
# The binary checks itself: the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["stripe-customer-sync", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["stripe-customer-sync"]
CMD ["serve"]
