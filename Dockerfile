# Dockerfile — one image with every Wasl binary: built with the -dev packages, run with the libs.
#
#   docker build -t wasl:latest --build-arg VERSION="$(git describe --always --dirty)" .
#   docker run --rm wasl:latest wasl-bus --help
#
# The image has no default daemon: docker-compose.yml (or the orchestrator) names the command.

# ---- build stage ------------------------------------------------------------------------------
FROM debian:bookworm AS build

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config ca-certificates python3 \
        libzmq3-dev libczmq-dev libmsgpack-dev libhiredis-dev libpq-dev libmicrohttpd-dev \
        libjansson-dev libcurl4-openssl-dev libicu-dev libgmime-3.0-dev libsodium-dev libyaml-dev \
        libsystemd-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# .git is not in the build context, so the version comes in as an argument.
ARG VERSION=dev
# Generated code first and alone: its rule makes two files, which a parallel make could run twice.
RUN make proto && make -j"$(nproc)" all VERSION="$VERSION" && mkdir -p services/desk/www

# ---- runtime stage ----------------------------------------------------------------------------
# Same release as the build stage (so the same library versions), without docs and man pages.
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libzmq5 libczmq4 libmsgpackc2 libhiredis0.14 libpq5 libmicrohttpd12 libjansson4 \
        libcurl4 libicu72 libgmime-3.0-0 libsodium23 libyaml-0-2 libsystemd0 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wasl \
    && useradd --system --uid 10001 --gid wasl --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin wasl

COPY --from=build /src/build/bin/ /usr/local/bin/
# The classifier's model, trained from data/classifier/train.tsv by `make all`.
COPY --from=build /src/build/model/classifier.bin /usr/local/share/wasl/classifier.bin
# Default routing rules and message templates (docker-compose mounts the repo's over them so an
# operator edits them in place).
COPY deploy/config/ /usr/local/share/wasl/config/
COPY deploy/templates/ /usr/local/share/wasl/templates/
# The desk's console (static files, no build step; wasl-desk reads them at start).
COPY --from=build /src/services/desk/www/ /usr/local/share/wasl/www/
ENV WASL_DESK_WWW=/usr/local/share/wasl/www
ENV WASL_DESK_REPLIES=/usr/local/share/wasl/templates/replies

# In a container the admin port must be reachable from other containers (Prometheus), not only
# from the container's own loopback.
ENV WASL_ADMIN_BIND=0.0.0.0

# Numeric, so that Kubernetes' runAsNonRoot can verify it (deploy/k8s runs as 10001:10001).
USER 10001:10001
WORKDIR /tmp
# Bus (base..base+7), intake's public HTTP, the desk's, the daemons' admin ports.
EXPOSE 7100-7107 8080 8090 9100-9106
CMD ["waslctl", "--help"]
