# syntax=docker/dockerfile:1
# lms-api: build the release binary, then run it on a slim Debian with a non-root user.
#
#   docker build -t dream-lms/lms-api .
#   docker run --env-file deploy/.env -p 8000:8000 dream-lms/lms-api          # serve
#   docker run --env-file deploy/.env dream-lms/lms-api migrate               # or storage-init

# ---- build ---------------------------------------------------------------------------------
# The toolchain pinned in rust-toolchain.toml (1.95.0), so rustup downloads nothing more.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target directories are BuildKit cache mounts: a rebuild after a source
# change recompiles the workspace crates only, not every dependency. The binary is copied out
# of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p lms-api --bin lms-api \
    && install -D -m 0755 target/release/lms-api /out/lms-api

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 lms \
    && useradd --system --uid 10001 --gid lms --home-dir /app --shell /usr/sbin/nologin lms \
    && install -d -o lms -g lms /app
COPY --from=build /out/lms-api /usr/local/bin/lms-api
USER lms
WORKDIR /app
ENV LMS_BIND=0.0.0.0:8000
EXPOSE 8000
# Liveness through bash's /dev/tcp (slim has no curl): GET /health on the port of LMS_BIND
# must answer 200. One-shot commands (migrate, storage-init) exit before it matters.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${LMS_BIND##*:} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["lms-api"]
CMD ["serve"]
