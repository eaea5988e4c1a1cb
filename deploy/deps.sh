#!/usr/bin/env bash
# deps.sh — install the Debian 12 packages Wasl needs to build, test and run (fast when present).
#
# Safe to run often (`make test` calls it): it asks dpkg what is missing and touches apt only then.
# Not root and something missing: prints the apt command to run and exits 1.
set -euo pipefail

# The one list. Build, unit tests (cmocka, valgrind), integration tests (python3-*), the local
# stack (postgresql, redis-server), tooling (clang-format, docker-compose for `config -q`, wrk;
# strace: the stack test records every command line `stack.sh up` runs). The desk console's
# browser test (make test-desk): Debian's chromium and its matching chromium-driver, driven by
# python3-selenium; fonts-noto-core has the Arabic glyphs the screenshots need.
PACKAGES=(
    build-essential pkg-config git ca-certificates curl
    libzmq3-dev libczmq-dev libmsgpack-dev libhiredis-dev libpq-dev libmicrohttpd-dev
    libjansson-dev libcurl4-openssl-dev libicu-dev libgmime-3.0-dev libsodium-dev libcmocka-dev libyaml-dev
    postgresql redis-server
    python3 python3-pytest python3-zmq python3-msgpack python3-psycopg2 python3-redis python3-aiosmtpd
    valgrind docker-compose clang-format wrk procps iproute2
    clang libclang-rt-14-dev
    libsystemd-dev systemd prometheus gnuplot-nox linux-perf python3-yaml
    strace
    chromium chromium-driver python3-selenium fonts-noto-core
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # "ii" = installed; anything else (absent, half-configured, removed) needs apt.
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    [[ $status == ii* ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

echo "deps: missing: ${missing[*]}" >&2
if ((EUID != 0)); then
    echo "deps: run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
