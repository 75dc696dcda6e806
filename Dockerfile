# applegate: multi-stage build, small non-root runtime image.
#
#   docker build -t applegate .
#   docker run -p 8080:8080 -v /etc/applegate:/etc/applegate:ro \
#     -v applegate-state:/var/lib/applegate applegate
#
# /etc/applegate holds applegate.toml and, beside it, the files it names
# (AuthKey_<KeyID>.p8, session.key), readable by uid 65532. Secrets may
# instead come from the environment: APPLEGATE_APPLE_PRIVATE_KEY,
# APPLEGATE_SESSION_SECRET. conf/docker-compose.yml runs it with an app.
#
# Runtime: gcr.io/distroless/cc-debian12:nonroot rather than
# debian:bookworm-slim. The binary needs only glibc and libgcc (rustls, no
# OpenSSL; mimalloc and zlib-ng are linked in), which cc-debian12 has, plus
# CA certificates; it has no shell, no package manager and no apt state to
# patch, and is about a third of bookworm-slim's size (roughly 25 MB vs
# 75 MB uncompressed for the base). The build stage is bookworm as well, so
# the glibc matches. Without a shell the HEALTHCHECK runs the binary itself
# (`applegate health`) and the state directory is copied in, owned by
# nonroot (uid 65532), since there is no `mkdir`.

FROM rust:1-bookworm AS build
# pingora-core builds zlib-ng, which needs cmake.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY conf conf
COPY benches benches
RUN cargo build --release --locked --bin applegate && strip target/release/applegate \
    && mkdir -p /out/var/lib/applegate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/applegate /usr/local/bin/applegate
COPY conf/applegate.example.toml /usr/share/applegate/applegate.example.toml
# Writable state: the config is mounted read-only, so set
# [state] path = "/var/lib/applegate/applegate.state" (`check` fails otherwise).
# A named volume mounted here starts with this directory's owner (nonroot).
COPY --from=build --chown=65532:65532 /out/var/lib/applegate /var/lib/applegate
VOLUME /var/lib/applegate
USER 65532:65532
EXPOSE 8080
# Needs [admin] listen in the config; in a container "0.0.0.0:9180" (publish
# it on the host's loopback only, as conf/docker-compose.yml does).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/applegate", "health", "--url", "http://127.0.0.1:9180/ping"]
ENTRYPOINT ["/usr/local/bin/applegate"]
CMD ["run", "--config", "/etc/applegate/applegate.toml"]
