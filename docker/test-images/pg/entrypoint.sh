#!/bin/sh
# A small stand-in for the official postgres image's entrypoint: honours POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB and POSTGRES_HOST_AUTH_METHOD; initialises the cluster on
# first start, then runs the server in the foreground. Like the official image it says
# "database system is ready to accept connections" once on stdout (the initialising server)
# and once on stderr (the final one): testcontainers' PostgreSQL module waits for both.
set -e
BIN=/usr/lib/postgresql/15/bin
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "$POSTGRES_HOST_AUTH_METHOD" ]; then
  if [ -n "$POSTGRES_PASSWORD" ]; then POSTGRES_HOST_AUTH_METHOD=scram-sha-256; else POSTGRES_HOST_AUTH_METHOD=trust; fi
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-postgres}" > "$pw"
  "$BIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pw" -A trust --no-sync >/dev/null
  rm -f "$pw"
  echo "host all all all $POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
fi
"$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start
if [ "$POSTGRES_DB" != postgres ] && ! psql -U "$POSTGRES_USER" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$POSTGRES_DB'" | grep -q 1; then
  psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
fi
"$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c fsync=off "$@"
