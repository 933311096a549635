# syntax=docker/dockerfile:1
# One image for every tradeflow process: `tradeflow up` (the default: the whole demo pipeline
# in one process), any `tradeflow worker <kind>`, `tradeflow edge`, or any other command.
# Build: docker build -t tradeflow .   Run the demo: docker run --rm -p 8080:8080 tradeflow
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the registry and the target directory between builds, so a source
# change rebuilds the workspace's crates, not its dependencies. The binary is copied out of the
# cached target directory (a cache mount is not part of the image).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tradeflow \
    && cp target/release/tradeflow /usr/local/bin/tradeflow

FROM debian:bookworm-slim
# redis-server: `tradeflow up` without REDIS_URL starts its own; curl: the health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /opt/tradeflow --shell /usr/sbin/nologin tradeflow
# The working directory holds what the defaults look for relative to it: streams.toml and the
# demo feed (demo/btcusd_1h.csv); data/ (the SQLite audit store, the embedded Redis, the edge's
# generated admin password) is the one place written, owned by the unprivileged user.
WORKDIR /opt/tradeflow
COPY streams.toml ./streams.toml
COPY demo/ ./demo/
RUN mkdir data && chown tradeflow:tradeflow data
COPY --from=build /usr/local/bin/tradeflow /usr/local/bin/tradeflow
USER tradeflow
# Inside a container the edge must listen on every interface to be reachable through a
# published port; the port is only reachable from outside where it is published.
ENV TRADEFLOW_STREAMS=/opt/tradeflow/streams.toml \
    TRADEFLOW_EDGE_LISTEN=0.0.0.0:8080
VOLUME ["/opt/tradeflow/data"]
EXPOSE 8080 9100
ENTRYPOINT ["tradeflow"]
CMD ["up"]
