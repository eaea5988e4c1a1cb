#!/usr/bin/env bash
# Installs Request Tracker 5 from Debian for `make bench-peer`, when missing.
# Non-interactive, and preseeded so that neither dbconfig (RT's database: the bench runs its
# own PostgreSQL cluster and initialises it itself) nor exim (RT's MTA dependency) configures
# anything on its own.
set -euo pipefail
pkgs=(request-tracker5 rt5-db-postgresql rt5-standalone)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "bench-peer: installing ${missing[*]} needs root" >&2
    exit 1
fi
debconf-set-selections <<'SEL'
request-tracker5 request-tracker5/dbconfig-install boolean false
request-tracker5 request-tracker5/dbconfig-upgrade boolean false
request-tracker5 request-tracker5/dbconfig-remove boolean false
request-tracker5 request-tracker5/rtname string wasl-bench.invalid
request-tracker5 request-tracker5/organization string wasl-bench.invalid
request-tracker5 request-tracker5/correspondaddress string rt@wasl-bench.invalid
request-tracker5 request-tracker5/commentaddress string rt-comment@wasl-bench.invalid
request-tracker5 request-tracker5/webbaseurl string http://127.0.0.1
request-tracker5 request-tracker5/install-cronjobs boolean false
request-tracker5 request-tracker5/handle-siteconfig-permissions boolean true
exim4-config exim4/dc_eximconfig_configtype select local delivery only; not on a network
exim4-config exim4/no_config boolean true
SEL
echo "bench-peer: installing ${missing[*]} (Debian packages, once)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
