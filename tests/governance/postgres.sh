#!/usr/bin/env bash
# A throw-away PostgreSQL server for the access-matrix suite (tests/python/test_governance.py).
#
#   tests/governance/postgres.sh start DIR   install PostgreSQL if missing (Debian, as root), create
#                                            a cluster in DIR, start it on 127.0.0.1 (a free port,
#                                            or $FRAUD_PG_PORT), create the roles
#                                            (tests/governance/setup_roles.sql), print KEY=VALUE lines
#   tests/governance/postgres.sh stop DIR    stop the server and delete DIR
#
# Passwords come from the environment, never from arguments (they would show in `ps`):
#   FRAUD_PG_PASSWORD (owner role fraud_owner), FRAUD_PG_DE_PASSWORD, FRAUD_PG_DS_PASSWORD,
#   FRAUD_PG_MLE_PASSWORD (the login users de_user, ds_user, mle_user).
# The server listens on loopback only; the superuser "postgres" has no password and is reachable
# only through the socket in DIR/sock. A failed `start` stops the server and deletes DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "postgres.sh: $*" >&2; exit 1; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return 0; }
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

install_postgres() {
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and this is not root: install it (apt-get install postgresql) or run as root"
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and there is no apt-get"
    echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # No default cluster (Debian would create 'main' and start it on port 5432): this script
    # makes its own, in DIR, and removes it at the end.
    apt-get install -y -qq --no-install-recommends postgresql-common >&2
    sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf
    apt-get install -y -qq --no-install-recommends postgresql >&2
}

free_port() {
    local port i
    for i in $(seq 1 50); do
        port=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# Run a command as the cluster owner: the postgres OS user when root, else the current user.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop_cluster() {
    local dir="$1" bindir
    if [[ -f "$dir/data/postmaster.pid" ]] && bindir="$(find_bindir)"; then
        (cd "$dir" && as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$dir"
}

start_cluster() {
    local dir="$1" bindir port
    [[ -d "$dir" ]] || mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    trap 'stop_cluster "$dir"' ERR
    bindir="$(find_bindir)" || { install_postgres; bindir="$(find_bindir)"; } || die "initdb/pg_ctl not found after install"
    port="${FRAUD_PG_PORT:-$(free_port)}"
    : "${FRAUD_PG_PASSWORD:?set FRAUD_PG_PASSWORD}" "${FRAUD_PG_DE_PASSWORD:?}" "${FRAUD_PG_DS_PASSWORD:?}" "${FRAUD_PG_MLE_PASSWORD:?}"

    chmod 711 "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        install -d -o postgres -g postgres -m 700 "$dir/data"
        install -d -o postgres -g postgres -m 755 "$dir/sock"
    else
        install -d -m 700 "$dir/data"
        install -d -m 755 "$dir/sock"
    fi
    (cd "$dir" && as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1) \
        || { cat "$dir/initdb.log" >&2; false; }
    (cd "$dir" && as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/sock/postgres.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >&2) || { cat "$dir/sock/postgres.log" >&2; false; }

    PGOPTIONS='' "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres -d postgres \
        -f "$here/setup_roles.sql" >&2

    trap - ERR
    echo "FRAUD_PG_HOST=127.0.0.1"
    echo "FRAUD_PG_PORT=$port"
    echo "FRAUD_PG_DATABASE=main"
    echo "FRAUD_PG_USER=fraud_owner"
    echo "FRAUD_PG_SOCKET_DIR=$dir/sock"
    echo "FRAUD_PG_BINDIR=$bindir"
}

case "${1:-}" in
    start) [[ $# -eq 2 ]] || die "usage: $0 start DIR"; start_cluster "$2" ;;
    stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop_cluster "$2" ;;
    *) die "usage: $0 start DIR | stop DIR" ;;
esac
