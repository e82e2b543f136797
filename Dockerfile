# syntax=docker/dockerfile:1
# mt5-reconciler: multi-stage build, runtime image runs as a non-root user.
#
#   docker build -t mt5-reconciler .
#   docker run -p 9187:9187 -e MT5_RECONCILER_TOKEN=change-me -v mt5r-data:/var/lib/mt5-reconciler mt5-reconciler
#
# In the container the HTTP server listens on 0.0.0.0:9187 (so the port can be published),
# which makes the bearer token mandatory. Any setting: -e MT5R_<SECTION>__<KEY>=value.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mt5-reconciler \
    && install -m 0755 target/release/mt5-reconciler /usr/local/bin/mt5-reconciler

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mt5r \
    && useradd --system --uid 10001 --gid mt5r --home-dir /var/lib/mt5-reconciler \
       --create-home --shell /usr/sbin/nologin mt5r
COPY --from=build /usr/local/bin/mt5-reconciler /usr/local/bin/mt5-reconciler
COPY config.toml /etc/mt5-reconciler/config.toml
USER 10001:10001
WORKDIR /var/lib/mt5-reconciler
VOLUME ["/var/lib/mt5-reconciler"]
ENV MT5R_HTTP__LISTEN=0.0.0.0:9187 \
    RUST_LOG=info
EXPOSE 9187
# SIGTERM: stop ticking, finish running syncs, flush, exit 0 (allow ~30 s: docker stop -t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mt5-reconciler"]
CMD ["run", "--config", "/etc/mt5-reconciler/config.toml", "--log-format", "json"]
