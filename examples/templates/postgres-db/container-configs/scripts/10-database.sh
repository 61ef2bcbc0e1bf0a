#!/bin/sh
# Creates the "app" role and database with a random password, and hands the password to
# ctforge through the credentials directory.
set -e
CRED="${CTFORGE_CREDENTIALS_DIR:-/etc/ctforge/credentials}"
mkdir -p "$CRED"
if [ ! -s "$CRED/postgres-app-password" ]; then
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$CRED/postgres-app-password"
fi
systemctl enable postgresql
systemctl restart postgresql
PW="$(cat "$CRED/postgres-app-password")"
su postgres -c "psql -tc \"SELECT 1 FROM pg_roles WHERE rolname='app'\"" | grep -q 1 \
    || su postgres -c "psql -c \"CREATE ROLE app LOGIN PASSWORD '$PW'\""
su postgres -c "psql -tc \"SELECT 1 FROM pg_database WHERE datname='app'\"" | grep -q 1 \
    || su postgres -c "createdb -O app app"
