#!/bin/sh
# secrets.sh — the Compose stack's one-shot secret maker (service `secrets`, as root, in the
# Wasl image): every CURVE key (`waslctl keygen`), PostgreSQL password and Redis password is
# made once into the volume `wasl-keys` and never changed by a later run; then each service's
# own volume gets only what that service needs:
#
#   /secrets/<daemon>/curve/<daemon>.secret + curve/public/bus.pub   its key, the bus's public
#   /secrets/<daemon>/pgpass                                          its PostgreSQL role's line
#   /secrets/<daemon>/redis-password                                  its Redis ACL user's
#   /secrets/bus/curve/bus.secret + curve/public/*.pub                the buses: every public key
#   /secrets/migrate/pgpass                                           the owner role `wasl`
#   /secrets/pg/<role>                                                passwords, for `db-roles`
#   /secrets/redis/users.acl                                          Redis users (hashes only)
set -eu
ALL=/secrets/all
DAEMONS="intake classifier router notifier caselookup desk"
# Daemons without a bus connection (so without a CURVE key): PostgreSQL and Redis only. None
# today: the desk joined the bus for its case panel (it asks caselookup).
EDGES=""
WASL_UID=10001
REDIS_UID=999 # the redis image's user
umask 077

mkdir -p "$ALL/curve" "$ALL/pg" "$ALL/redis"
waslctl keygen --dir "$ALL/curve" bus $DAEMONS >/dev/null

# A random password (hex: safe in URLs and pgpass lines), made once.
password() {
    [ -s "$1" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$1"
}
for role in wasl $(for d in $DAEMONS $EDGES; do echo "wasl_$d"; done); do
    password "$ALL/pg/$role"
done
for d in $DAEMONS $EDGES; do password "$ALL/redis/$d"; done

# Replaces the content of a service's volume (the volume itself stays mounted).
reset() {
    mkdir -p "$1"
    find "$1" -mindepth 1 -delete
}

for d in $DAEMONS; do
    out=/secrets/$d
    reset "$out"
    mkdir -p "$out/curve/public"
    cp "$ALL/curve/$d.secret" "$out/curve/"
    cp "$ALL/curve/public/bus.pub" "$out/curve/public/"
    printf 'postgres:5432:wasl:wasl_%s:%s\n' "$d" "$(cat "$ALL/pg/wasl_$d")" >"$out/pgpass"
    cp "$ALL/redis/$d" "$out/redis-password"
    chown -R "$WASL_UID:$WASL_UID" "$out"
done

for d in $EDGES; do
    out=/secrets/$d
    reset "$out"
    printf 'postgres:5432:wasl:wasl_%s:%s\n' "$d" "$(cat "$ALL/pg/wasl_$d")" >"$out/pgpass"
    cp "$ALL/redis/$d" "$out/redis-password"
    chown -R "$WASL_UID:$WASL_UID" "$out"
done

reset /secrets/bus
mkdir -p /secrets/bus/curve/public
cp "$ALL/curve/bus.secret" /secrets/bus/curve/
for d in bus $DAEMONS; do cp "$ALL/curve/public/$d.pub" /secrets/bus/curve/public/; done
chown -R "$WASL_UID:$WASL_UID" /secrets/bus

reset /secrets/migrate
printf 'postgres:5432:*:wasl:%s\n' "$(cat "$ALL/pg/wasl")" >/secrets/migrate/pgpass
chown -R "$WASL_UID:$WASL_UID" /secrets/migrate

reset /secrets/pg
cp "$ALL/pg/"* /secrets/pg/

# Redis ACL: no anonymous access but PING (the healthcheck); each daemon its own user, only on
# Wasl's keys, without the admin and dangerous commands (FLUSHALL, CONFIG, KEYS, DEBUG…).
reset /secrets/redis
{
    echo "user default on nopass -@all +ping"
    for d in $DAEMONS $EDGES; do
        hash=$(printf '%s' "$(cat "$ALL/redis/$d")" | sha256sum | cut -d ' ' -f 1)
        echo "user $d on #$hash ~wasl:* &* +@all -@admin -@dangerous"
    done
} >/secrets/redis/users.acl
chown -R "$REDIS_UID:$REDIS_UID" /secrets/redis
echo "secrets: ready"
