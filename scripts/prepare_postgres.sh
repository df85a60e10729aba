#!/usr/bin/env bash
# Prepare this machine's PostgreSQL for the Postgres Changes tests (run by `make test`).
#
# Idempotent: logical replication needs wal_level=logical and a few replication slots and WAL
# senders. A setting is changed (ALTER SYSTEM) only when it differs, and the cluster restarted only
# then. When PostgreSQL does not answer: in CI (CI=true) we try to start it and fail loudly;
# elsewhere we say so and exit 0, and the tests marked `postgres` skip with a message.
set -euo pipefail

# PGHOST_PREPARE / PGPORT_PREPARE point the check elsewhere (used to test the "down" paths).
HOST="${PGHOST_PREPARE:-127.0.0.1}"
PORT="${PGPORT_PREPARE:-5432}"
PGUSER_NAME=postgres
MIN_SLOTS=10

ready() { pg_isready -q -h "$HOST" -p "$PORT" >/dev/null 2>&1; }
sql() { psql -h "$HOST" -p "$PORT" -U "$PGUSER_NAME" -d postgres -v ON_ERROR_STOP=1 -Atc "$1"; }

cluster_version() {
    # The one installed cluster version (e.g. 15); pg_lsclusters knows, /etc/postgresql as a fallback.
    if command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters -h | awk '$2 == "main" { print $1; exit }'
    else
        ls /etc/postgresql 2>/dev/null | head -n 1
    fi
}

wait_ready() {
    # Bounded: 30 s.
    for _ in $(seq 1 60); do
        if ready; then return 0; fi
        sleep 0.5
    done
    return 1
}

pg_ctl_cluster() {
    local action=$1 version
    version=$(cluster_version)
    if [[ -z "$version" ]]; then
        echo "prepare_postgres: no PostgreSQL cluster found (pg_lsclusters, /etc/postgresql)" >&2
        return 1
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main "$action"
}

if ! ready; then
    if [[ "${CI:-}" == "true" ]]; then
        echo "prepare_postgres: PostgreSQL on $HOST:$PORT does not answer; starting it (CI=true)"
        pg_ctl_cluster start || true
        if ! wait_ready; then
            echo "prepare_postgres: PostgreSQL on $HOST:$PORT still does not answer;" \
                "the postgres-marked tests cannot run in CI" >&2
            exit 1
        fi
    else
        echo "prepare_postgres: PostgreSQL on $HOST:$PORT does not answer;" \
            "tests marked 'postgres' will skip (in CI they fail)."
        exit 0
    fi
fi

changed=0
wal_level=$(sql "SHOW wal_level")
if [[ "$wal_level" != "logical" ]]; then
    echo "prepare_postgres: wal_level is $wal_level; setting it to logical"
    sql "ALTER SYSTEM SET wal_level = logical" >/dev/null
    changed=1
fi
for setting in max_replication_slots max_wal_senders; do
    value=$(sql "SHOW $setting")
    if (( value < MIN_SLOTS )); then
        echo "prepare_postgres: $setting is $value; setting it to $MIN_SLOTS"
        sql "ALTER SYSTEM SET $setting = $MIN_SLOTS" >/dev/null
        changed=1
    fi
done

if (( changed )); then
    echo "prepare_postgres: restarting PostgreSQL so the settings take effect"
    pg_ctl_cluster restart
    if ! wait_ready; then
        echo "prepare_postgres: PostgreSQL did not come back within 30 s after the restart" >&2
        exit 1
    fi
    wal_level=$(sql "SHOW wal_level")
    if [[ "$wal_level" != "logical" ]]; then
        echo "prepare_postgres: wal_level is still $wal_level after the restart" >&2
        exit 1
    fi
fi

echo "PostgreSQL ready (wal_level=$wal_level)"
