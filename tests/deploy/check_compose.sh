#!/usr/bin/env bash
# check_compose.sh — validates docker-compose.yml statically (no container is started).
#
#   bash tests/deploy/check_compose.sh   # exit 0 and one summary line, or 1 naming each problem
#
# `docker-compose config -q` (Debian's 1.29, or Docker Compose v2) checks the syntax; then
# Python checks what makes --scale and a clean secret story work.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
FILE=${COMPOSE_FILE_UNDER_TEST:-docker-compose.yml}

# The file refuses to interpolate without the password (${WASL_PG_PASSWORD:?...}): give it a
# dummy one, which also proves that the refusal is there (checked below).
if command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    echo "check_compose: docker-compose missing (deploy/deps.sh installs it)" >&2
    exit 1
fi
if (unset WASL_PG_PASSWORD; "${compose[@]}" -f "$FILE" config -q) >/dev/null 2>&1; then
    echo "check_compose: $FILE interpolates without WASL_PG_PASSWORD (a default password?)" >&2
    exit 1
fi
if (unset WASL_PII_KEY; WASL_PG_PASSWORD=check-compose-dummy "${compose[@]}" -f "$FILE" \
    config -q) >/dev/null 2>&1; then
    echo "check_compose: $FILE interpolates without WASL_PII_KEY (a default key?)" >&2
    exit 1
fi
if ! WASL_PG_PASSWORD=check-compose-dummy WASL_PII_KEY=check-compose-dummy-key-0123456789abcdef \
    "${compose[@]}" -f "$FILE" config -q; then
    echo "check_compose: ${compose[*]} config -q rejected $FILE" >&2
    exit 1
fi

exec "$PYTHON" - "$FILE" <<'PY'
"""Assertions over the raw compose file (before interpolation)."""
import re
import sys

import yaml

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    text = f.read()
doc = yaml.safe_load(text)
services = doc.get("services") or {}
errors = []
# Services that run once and exit: the others wait for them to complete, not to be healthy.
ONE_SHOT = {"migrate", "secrets", "db-roles"}
BUSES = {"bus-a", "bus-b"}
WASL_DAEMONS = {"intake", "classifier", "router", "notifier", "caselookup", "desk"}


def fail(where, msg):
    errors.append(f"{where}: {msg}")


def fixed_host_port(entry):
    """True when a ports entry pins one host port (a range or none lets --scale work)."""
    def defaults(s):  # ${VAR:-default} and ${VAR-default} → default
        return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", s)
    if isinstance(entry, dict):
        published = defaults(str(entry.get("published", "")))
    else:
        parts = defaults(str(entry)).rsplit("/", 1)[0].split(":")
        published = parts[-2] if len(parts) >= 2 else ""
    return bool(published) and "-" not in published


for name, svc in services.items():
    where = f"service {name}"
    if "container_name" in svc:
        fail(where, "has container_name (breaks --scale)")
    if name not in ONE_SHOT:
        hc = svc.get("healthcheck")
        if not hc or hc.get("disable"):
            fail(where, "has no healthcheck")
    for entry in svc.get("ports") or []:
        if fixed_host_port(entry):
            fail(where, f"publishes a fixed host port {entry!r} (breaks --scale)")
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    for key, value in env.items():
        value = str(value)
        if re.search(r"PASSWORD$", key) and value and not value.startswith("${"):
            fail(where, f"{key} has a literal value")
        if "://" in value and re.search(r"://[^/@\s]*:[^/@\s]+@", value):
            fail(where, f"{key} carries a password in its URL")

for key, value in re.findall(r"^\s*([A-Z_]*PASSWORD[A-Z_]*):\s*(.*)$", text, re.M):
    if re.search(r"\$\{[A-Z_]+:-[^}]+\}", value):
        fail(key, f"has a default password in the file: {value.strip()}")

missing = (BUSES | WASL_DAEMONS | ONE_SHOT) - set(services)
if missing:
    fail(path, f"missing services: {sorted(missing)}")
wasl_bus = set()
for name, svc in services.items():
    env = svc.get("environment") or {}
    if isinstance(env, dict) and "WASL_BUS" in env:
        wasl_bus.add(str(env["WASL_BUS"]))
for bus in BUSES:
    if not all(f"tcp://{bus}:7100" in b for b in wasl_bus) or not wasl_bus:
        fail(path, f"WASL_BUS does not list tcp://{bus}:7100 everywhere: {sorted(wasl_bus)}")

# Finding 8 and 12 of issue 13: least privilege, CURVE on, each service its own secrets.
def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: str(v) for k, v in env.items()}


def volume_names(svc):
    out = []
    for v in svc.get("volumes") or []:
        src = v.get("source") if isinstance(v, dict) else str(v).split(":", 1)[0]
        out.append(str(src))
    return out


for name in sorted(WASL_DAEMONS | BUSES | {"migrate"}):
    svc = services.get(name) or {}
    env = env_of(svc)
    where = f"service {name}"
    own = "wasl-secrets-" + ("bus" if name in BUSES else name)
    secret_volumes = [v for v in volume_names(svc) if v.startswith("wasl-")]
    if secret_volumes != [own]:
        fail(where, f"must mount its own secrets volume {own} and no other: {secret_volumes}")
    if name != "migrate" and not env.get("WASL_CURVE_DIR"):
        fail(where, "CURVE is off (WASL_CURVE_DIR empty)")
    if name in WASL_DAEMONS:
        if env.get("PGUSER") != f"wasl_{name}":
            fail(where, f"does not connect to PostgreSQL as wasl_{name} (PGUSER)")
        if "redis-password" not in " ".join(str(x) for x in svc.get("entrypoint") or []):
            fail(where, "does not use its own Redis user")
    if "@" in env.get("WASL_PG_URL", ""):
        fail(where, "WASL_PG_URL names a user (each service sets PGUSER)")
if (env_of(services.get("migrate") or {}).get("PGUSER")) != "wasl":
    fail("service migrate", "does not run as the owner role wasl")
for name, svc in services.items():
    if "wasl-keys" in volume_names(svc) and name != "secrets":
        fail(f"service {name}", "mounts every secret (wasl-keys)")
if "--aclfile" not in (services.get("redis") or {}).get("command", []):
    fail("service redis", "has no ACL file (no passwords)")
if "keygen" not in open("deploy/compose/secrets.sh", encoding="utf-8").read():
    fail("deploy/compose/secrets.sh", "does not generate the CURVE keys")

if errors:
    for e in errors:
        print(f"check_compose: {e}", file=sys.stderr)
    print(f"check_compose: FAILED ({len(errors)} problems)", file=sys.stderr)
    sys.exit(1)
print(f"check_compose: ok ({len(services)} services, {len(services) - len(ONE_SHOT)} with "
      f"healthchecks, no container_name, no fixed host port, no password in {path})")
PY
