#!/usr/bin/env bash
# check_systemd.sh — `systemd-analyze verify` on every unit in deploy/systemd/, plus our policy.
#
#   make all && bash tests/deploy/check_systemd.sh   # exit 0 and a summary, or 1 naming each problem
#
# verify checks that ExecStart= binaries exist, so the units are checked as installed, not
# rewritten: a temporary root gets the units in /etc/systemd/system, build/bin/* in
# /usr/local/bin (where the Dockerfile installs them too) and a copy of the host's own system
# units (sysinit.target & co., which every service depends on by default), then
# `systemd-analyze verify --root=` runs on it. Template units are verified as one instance.
# verify prints unknown keys and bad values as warnings and still exits 0: any line naming one
# of our units fails the check. `systemd-analyze security --offline` scores are printed; set
# WASL_SYSTEMD_EXPOSURE_MAX (e.g. 2.5) to also fail above that score.
set -euo pipefail
cd "$(dirname "$0")/../.."
UNITS=deploy/systemd
BIN=build/bin
SYSTEM_UNITS=${SYSTEM_UNITS:-/usr/lib/systemd/system}
# Instance used for each template unit: an admin port, as its comment explains.
TEMPLATE_INSTANCE=9190

command -v systemd-analyze >/dev/null || { echo "check_systemd: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
[ -x "$BIN/wasl-bus" ] || { echo "check_systemd: $BIN/ has no binaries; run make all first" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/usr/lib/systemd"
cp -a "$SYSTEM_UNITS" "$root/usr/lib/systemd/system"
cp "$BIN"/* "$root/usr/local/bin/"
cp "$UNITS"/*.service "$UNITS"/*.target "$root/etc/systemd/system/"

fail=0
problem() {
    echo "check_systemd: $*" >&2
    fail=1
}

names=()
daemons=()
for f in "$UNITS"/*.service "$UNITS"/*.target; do
    u=$(basename "$f")
    case $u in
    *@.service) names+=("${u%@.service}@$TEMPLATE_INSTANCE.service") ;;
    *) names+=("$u") ;;
    esac
    case $u in
    wasl-migrate.service | *.target) ;;
    *) daemons+=("$f") ;;
    esac
done

# 1. systemd's own verdict, as installed.
if ! systemd-analyze verify --root="$root" "${names[@]}" >"$tmp/verify.log" 2>&1; then
    problem "systemd-analyze verify failed:"
    cat "$tmp/verify.log" >&2
elif grep -E 'wasl[-.@a-z0-9]*\.(service|target)' "$tmp/verify.log" >"$tmp/ours.log"; then
    problem "systemd-analyze verify warns about our units:"
    cat "$tmp/ours.log" >&2
fi

# 2. What verify does not enforce: the settings every daemon must have (issue: deploy kit).
required=(
    Type=notify NotifyAccess=main WatchdogSec= EnvironmentFile=/etc/wasl/wasl.env
    LoadCredential= Restart=on-failure TimeoutStopSec= MemoryMax=
    DynamicUser=yes ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes PrivateTmp=yes
    PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes
    ProtectControlGroups=yes RestrictNamespaces=yes LockPersonality=yes
    MemoryDenyWriteExecute=yes SystemCallFilter=@system-service
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6'
)
for f in "${daemons[@]}"; do
    for key in "${required[@]}"; do
        grep -q "^$key" "$f" || problem "$f: no $key line"
    done
    grep -qx 'CapabilityBoundingSet=' "$f" || problem "$f: CapabilityBoundingSet= is not empty"
    grep -q '^WantedBy=wasl.target' "$f" || problem "$f: not WantedBy=wasl.target"
done
for f in "$UNITS"/*@.service; do
    grep -qx 'Environment=WASL_ADMIN_PORT=%i' "$f" || problem "$f: the admin port is not the instance"
done
for d in bus intake classifier router notifier caselookup desk; do
    [ -f "$UNITS/wasl-$d.service" ] || problem "no $UNITS/wasl-$d.service"
    grep -q "wasl-$d.service" "$UNITS/wasl.target" || problem "wasl.target does not want wasl-$d.service"
done
# The example environment must not override what the units set (EnvironmentFile= wins).
if grep -nE '^(WASL_ADMIN_PORT|WASL_CURVE_DIR|WASL_CURVE_NAME|PGPASSFILE|PGUSER)=' "$UNITS/wasl.env" >&2; then
    problem "$UNITS/wasl.env sets a variable the units own"
fi
# Least privilege: each unit that uses PostgreSQL connects as its own role with its own pgpass.
grep -qE '^WASL_PG_URL=postgresql://[^@]*$' "$UNITS/wasl.env" ||
    problem "$UNITS/wasl.env: WASL_PG_URL must name no user (each unit sets PGUSER)"
for d in intake classifier router notifier caselookup desk migrate; do
    role=wasl_$d
    [ "$d" = migrate ] && role=wasl
    for f in "$UNITS/wasl-$d.service" "$UNITS/wasl-$d@.service"; do
        [ -f "$f" ] || continue
        grep -qx "Environment=PGUSER=$role" "$f" || problem "$f: does not connect as $role"
        grep -qx "LoadCredential=pgpass:/etc/wasl/pgpass.d/$role" "$f" ||
            problem "$f: not given $role's pgpass alone"
    done
done

# 3. Exposure scores (offline: from the unit files alone).
worst=0
for n in "${names[@]}"; do
    case $n in *.target | wasl-migrate.service) ;; *)
        score=$(systemd-analyze security --offline=true --root="$root" "$n" 2>/dev/null |
            sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
        [ -n "$score" ] || { problem "systemd-analyze security gave no score for $n"; continue; }
        printf '  %-36s exposure %s\n' "$n" "$score"
        worst=$(awk -v a="$worst" -v b="$score" 'BEGIN { print (b > a) ? b : a }')
        ;;
    esac
done
if [ -n "${WASL_SYSTEMD_EXPOSURE_MAX:-}" ] &&
    awk -v w="$worst" -v m="$WASL_SYSTEMD_EXPOSURE_MAX" 'BEGIN { exit !(w > m) }'; then
    problem "exposure $worst is above WASL_SYSTEMD_EXPOSURE_MAX=$WASL_SYSTEMD_EXPOSURE_MAX"
fi

if [ "$fail" -ne 0 ]; then
    exit 1
fi
echo "check_systemd: ${#names[@]} units verify clean (systemd $(systemd-analyze --version |
    sed -n '1s/systemd \([0-9]*\).*/\1/p')); worst exposure $worst"
