# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run as a non-root user in a slim image.

FROM rust:1-bookworm AS build
WORKDIR /src
# Cache dependencies: build a stub crate against the real manifest first.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin chatwire \
    && rm -rf src target/release/.fingerprint/chatwire-*
COPY src ./src
COPY static ./static
# The message log's schema migrations are embedded at compile time.
COPY migrations ./migrations
RUN cargo build --release --locked --bin chatwire && strip target/release/chatwire

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin chatwire \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /src/target/release/chatwire /usr/local/bin/chatwire
USER 10001:10001
# The default message log (SQLite) lives in /data: mount a volume there to keep it.
ENV HOST=0.0.0.0 PORT=8084 LOG_FORMAT=json DATA_DIR=/data
VOLUME /data
EXPOSE 8084
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/chatwire", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/chatwire"]
