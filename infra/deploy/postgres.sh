#!/usr/bin/env bash
# A PostgreSQL database for the Prefect server, from Debian's packages: the production set-up.
# SQLite (the default, ~/.prefect/prefect.db) serialises writes, so a server that many flow
# runs and workers report to at once should run on PostgreSQL (14.9 or newer, with pg_trgm).
#
#   sudo bash infra/deploy/postgres.sh [DATABASE] [ROLE]      # defaults: prefect prefect
#
# It installs PostgreSQL if needed, starts its cluster (listening on localhost only, Debian's
# default), creates the role and the database with pg_trgm, and prints the settings to export
# before `crucible server` / `prefect server start`:
#
#   export PREFECT_SERVER_DATABASE_CONNECTION_URL=postgresql+asyncpg://ROLE:PASSWORD@127.0.0.1:5432/DATABASE
#
# The password comes from PREFECT_DB_PASSWORD, or is generated and kept (mode 600) in
# /etc/crucible/prefect-db-password so that a second run prints the same URL. Running it
# again changes nothing else. The server creates its tables (migrations) when it starts.
set -euo pipefail
DB="${1:-prefect}"
ROLE="${2:-prefect}"
[[ "$DB" =~ ^[a-z_][a-z0-9_]*$ && "$ROLE" =~ ^[a-z_][a-z0-9_]*$ ]] || {
    echo "error: database and role names may hold only lowercase letters, digits and '_'" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
    echo "error: run as root (it installs packages and administers PostgreSQL): sudo bash $0" >&2
    exit 2
fi

if ! command -v pg_lsclusters >/dev/null; then
    echo "installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -1)
if [ "$STATUS" != "online" ]; then
    pg_ctlcluster "$VERSION" "$CLUSTER" start  # without systemd (containers) as well as with it
fi

SECRET=/etc/crucible/prefect-db-password
if [ -n "${PREFECT_DB_PASSWORD:-}" ]; then
    PASSWORD="$PREFECT_DB_PASSWORD"
elif [ -s "$SECRET" ]; then
    PASSWORD="$(cat "$SECRET")"
else
    install -d -m 700 /etc/crucible
    PASSWORD="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    (umask 077 && printf '%s' "$PASSWORD" > "$SECRET")
fi

# The password reaches psql through its environment (readable only by root and the process's
# own user), never its command line, which every user of the host can read in `ps`.
export CRUCIBLE_DB_PASSWORD="$PASSWORD"
PSQL_MAJOR="$(psql --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')"
if [ "$PSQL_MAJOR" -lt 15 ]; then
    echo "error: psql $PSQL_MAJOR is too old (its \\getenv, which keeps the password out of the process list, needs 15)" >&2
    exit 2
fi
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -p "$PORT" -v role="$ROLE" -v db="$DB" <<'SQL'
\getenv pw CRUCIBLE_DB_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
ALTER ROLE :"role" PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
\connect :"db"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
unset CRUCIBLE_DB_PASSWORD

# Percent-encoded, byte by byte: a password with '@', ':', '/' or '%' would otherwise end the
# URL's user part early or change its host.
urlencode() {
    local LC_ALL=C s="$1" out="" c hex i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
            [a-zA-Z0-9.~_-]) out+="$c" ;;
            *) printf -v hex '%%%02X' "'$c"; out+="$hex" ;;
        esac
    done
    printf '%s' "$out"
}

echo "PostgreSQL $VERSION ($CLUSTER) on 127.0.0.1:$PORT, database $DB, role $ROLE; now run:" >&2
echo "export PREFECT_SERVER_DATABASE_CONNECTION_URL=postgresql+asyncpg://$ROLE:$(urlencode "$PASSWORD")@127.0.0.1:$PORT/$DB"
