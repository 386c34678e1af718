#!/usr/bin/env bash
# Make the PostgreSQL that the tests use exist and run: 127.0.0.1:5432, trust auth on loopback,
# database `test`. Installs Debian's `postgresql` when absent (needs root and apt). Idempotent.
# Under CI=true a failure exits non-zero, so PostgreSQL tests can never silently skip there.
set -uo pipefail

HOST=127.0.0.1
PORT=5432
DB=test

say() { echo "ensure_postgres: $*" >&2; }
give_up() {
  say "$*"
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  say "PostgreSQL tests will skip (outside CI)"
  exit 0
}
ready() { pg_isready -h "$HOST" -p "$PORT" -q 2>/dev/null; }
can_connect() { psql -h "$HOST" -p "$PORT" -U postgres -d "$1" -Atqc 'select 1' >/dev/null 2>&1; }
newest_version() { ls /usr/lib/postgresql | sort -V | tail -n 1; }

trust_loopback() {  # tests connect as postgres over loopback without a password
  local hba=/etc/postgresql/$1/main/pg_hba.conf
  grep -q '^# paystream-tests' "$hba" && return 1
  say "allowing trust auth on loopback in $hba"
  { echo "# paystream-tests: loopback trust for the test suite"
    echo "host all all 127.0.0.1/32 trust"
    echo "host all all ::1/128 trust"
    cat "$hba"; } > "$hba.new" && mv "$hba.new" "$hba" && chown postgres:postgres "$hba"
}

command -v pg_isready >/dev/null && ready && can_connect "$DB" && exit 0

admin=no
[ "$(id -u)" = "0" ] && command -v apt-get >/dev/null && admin=yes

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  [ "$admin" = yes ] || give_up "no PostgreSQL server installed and cannot install one (needs root and apt)"
  say "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get install -y -q postgresql >/dev/null 2>&1 \
    || { timeout 300 apt-get update -q >/dev/null 2>&1 && timeout 600 apt-get install -y -q postgresql >/dev/null 2>&1; } \
    || give_up "apt-get install postgresql failed"
fi

version=$(newest_version)
if ! ready; then
  [ "$admin" = yes ] || give_up "PostgreSQL is not running at $HOST:$PORT and this user cannot start it"
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$version main"; then
    say "creating cluster $version/main"
    pg_createcluster "$version" main --port "$PORT" >/dev/null || give_up "pg_createcluster failed"
  fi
  trust_loopback "$version"
  say "starting PostgreSQL $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
  ready || give_up "PostgreSQL did not become ready at $HOST:$PORT"
elif ! can_connect postgres && [ "$admin" = yes ] && trust_loopback "$version"; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 || true
  sleep 1
fi

if ! can_connect "$DB"; then
  can_connect postgres || give_up "cannot connect as postgres@$HOST:$PORT (is loopback trusted?)"
  psql -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null 2>&1 \
    || give_up "CREATE DATABASE $DB failed"
fi
can_connect "$DB" || give_up "database $DB not reachable at $HOST:$PORT"
say "PostgreSQL ready at $HOST:$PORT, database $DB"
