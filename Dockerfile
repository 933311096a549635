# tradeflow binary image. Build: docker build -t tradeflow .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p tradeflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/tradeflow /usr/local/bin/tradeflow
COPY streams.toml /etc/tradeflow/streams.toml
ENV TRADEFLOW_STREAMS=/etc/tradeflow/streams.toml
ENTRYPOINT ["tradeflow"]
CMD ["up"]
