# applegate: multi-stage build, small non-root runtime image.
#
#   docker build -t applegate .
#   docker run -p 8080:8080 -v /etc/applegate:/etc/applegate:ro applegate
#
# /etc/applegate holds applegate.toml and, beside it, the files it names
# (AuthKey_<KeyID>.p8, session.key). Secrets may instead come from the
# environment: APPLEGATE_APPLE_PRIVATE_KEY, APPLEGATE_SESSION_SECRET.

FROM rust:1-bookworm AS build
# pingora-core builds zlib-ng, which needs cmake.
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY conf conf
COPY benches benches
RUN cargo build --release --locked --bin applegate && strip target/release/applegate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin applegate \
    && mkdir -p /var/lib/applegate && chown 10001 /var/lib/applegate
COPY --from=build /src/target/release/applegate /usr/local/bin/applegate
COPY conf/applegate.example.toml /usr/share/applegate/applegate.example.toml
# Writable state: the config is mounted read-only, so set
# [state] path = "/var/lib/applegate/applegate.state" (`check` fails otherwise).
VOLUME /var/lib/applegate
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/applegate"]
CMD ["run", "--config", "/etc/applegate/applegate.toml"]
