#!/bin/sh
# The entrypoint of kubelab's offline PostgreSQL image: the part of the
# official postgres image's entrypoint the manifests rely on, so the same
# StatefulSet runs either image. On an empty PGDATA it creates the cluster
# with POSTGRES_USER / POSTGRES_PASSWORD and the database POSTGRES_DB, then
# runs postgres with the container's arguments.
set -eu
: "${PGDATA:?PGDATA must be set}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  pwfile=/tmp/pwfile
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --locale=C --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$db" != "postgres" ]; then
    postgres --single -D "$PGDATA" -c jit=off postgres <<SQL >/dev/null
CREATE DATABASE "$db" OWNER "$user";
SQL
  fi
  echo "entrypoint: initialised $PGDATA with user $user and database $db"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
