# Throwaway servers for the distributed tests (tests/distributed): a PostgreSQL cluster and an
# MLflow tracking server backed by it, both on 127.0.0.1 (free ports) in a temporary folder.
#
#   source .ci/servers.sh      # in bash: starts both, exports DNC_TEST_POSTGRES_URL and
#                              # DNC_TEST_MLFLOW_URI; `dnc_servers_stop` (or leaving the
#                              # shell) stops them and removes the folder
#   bash .ci/servers.sh CMD... # runs CMD with both servers, then stops them
#   bash .ci/servers.sh        # starts both, prints the exports, stops them on Ctrl-C
#
# DNC_TEST_POSTGRES_URL is postgresql://dnc:<random password>@127.0.0.1:<port>/dnc_test: role
# dnc has CREATEDB (the tests' fixture makes a fresh database per test) and a password that the
# server really asks for over TCP (scram-sha-256). The cluster's superuser `postgres` can only
# log in through the cluster's own Unix socket. The MLflow server's store is the database
# `mlflow` of the same cluster; its artifacts go to the temporary folder.
#
# PostgreSQL's binaries are taken from PATH or /usr/lib/postgresql/*/bin and, where missing,
# installed with `apt-get install -y postgresql` (as root, or with passwordless sudo). initdb
# refuses to run as root: as root the cluster runs as the user `postgres` (created if missing).
# The MLflow server runs from the same Python (`python -m mlflow`, or $DNC_PYTHON), which needs
# a PostgreSQL driver (psycopg, in the dev extra).

dnc_servers__log() { echo "== servers: $*" >&2; }

# Runs "$@" as the cluster's owner (the current user, or `postgres` when we are root).
dnc_servers__as_owner() {
    if [[ $(id -u) -ne 0 ]]; then
        (cd "$DNC_SERVERS_DIR" && "$@")
    else
        (cd "$DNC_SERVERS_DIR" && runuser -u "$DNC_SERVERS_OWNER" -- "$@")
    fi
}

dnc_servers__find_pg_bin() {
    local initdb dir
    initdb=$(command -v initdb 2>/dev/null || true)
    if [[ -n $initdb ]]; then
        dir=$(dirname "$(readlink -f "$initdb")")
    else  # Debian keeps them off PATH; take the newest version
        dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]] || return 1
    DNC_SERVERS_PG_BIN=$dir
}

dnc_servers__install_pg() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            dnc_servers__log "PostgreSQL (initdb, pg_ctl, postgres) is missing and we cannot" \
                "apt-get install it (not root, no passwordless sudo); install postgresql"
            return 1
        fi
    fi
    dnc_servers__log "PostgreSQL is missing: apt-get install -y postgresql"
    # No default cluster: the package would otherwise create (and maybe start) one on port 5432.
    "${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d || return 1
    echo "create_main_cluster = false" \
        | "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/dnc-ci.conf >/dev/null || return 1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql || return 1
}

dnc_servers__free_port() {
    "$DNC_SERVERS_PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

dnc_servers_start() {
    if [[ -n ${DNC_SERVERS_DIR:-} ]]; then
        dnc_servers__log "already running (in $DNC_SERVERS_DIR); dnc_servers_stop first"
        return 1
    fi
    local t0=$SECONDS
    DNC_SERVERS_PY=${DNC_PYTHON:-$(command -v python || command -v python3)}
    if ! "$DNC_SERVERS_PY" -c 'import mlflow, psycopg' 2>/dev/null; then
        dnc_servers__log "$DNC_SERVERS_PY lacks mlflow or psycopg:" \
            "pip install -e '.[dev]' (or 'psycopg[binary]')"
        return 1
    fi
    dnc_servers__find_pg_bin || { dnc_servers__install_pg && dnc_servers__find_pg_bin; } || {
        dnc_servers__log "no PostgreSQL binaries found"
        return 1
    }
    local bin=$DNC_SERVERS_PG_BIN psql
    psql=$bin/psql
    [[ -x $psql ]] || psql=$(command -v psql) || { dnc_servers__log "psql is missing"; return 1; }

    # As root: in /tmp, which the cluster's owner can reach (a root-only $TMPDIR may not be).
    local tmp=${TMPDIR:-/tmp}
    [[ $(id -u) -ne 0 ]] || tmp=/tmp
    DNC_SERVERS_DIR=$(mktemp -d "$tmp/dnc-servers.XXXXXX") || return 1
    local dir=$DNC_SERVERS_DIR
    mkdir "$dir/pg" "$dir/artifacts" || return 1
    if [[ $(id -u) -eq 0 ]]; then  # initdb refuses root
        DNC_SERVERS_OWNER=postgres
        if ! id -u "$DNC_SERVERS_OWNER" >/dev/null 2>&1; then
            dnc_servers__log "creating the system user $DNC_SERVERS_OWNER (initdb refuses root)"
            useradd --system --no-create-home --shell /usr/sbin/nologin "$DNC_SERVERS_OWNER" \
                || return 1
        fi
        chmod 711 "$dir" && chown "$DNC_SERVERS_OWNER" "$dir/pg" || return 1
    fi

    local pg_port password
    pg_port=$(dnc_servers__free_port) || return 1
    password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n') || return 1
    dnc_servers__log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') ($bin)" \
        "on 127.0.0.1:$pg_port, data in $dir/pg"
    # Local (socket) connections are trusted: only the superuser setup below uses them. Over TCP
    # every role needs its password.
    dnc_servers__as_owner "$bin/initdb" -D "$dir/pg/data" -U postgres -E UTF8 --no-locale \
        --no-sync --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        return 1
    }
    dnc_servers__as_owner "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/pg -c fsync=off" \
        start >/dev/null || {
        cat "$dir/pg/server.log" >&2
        return 1
    }
    DNC_SERVERS_PG_CTL=$bin/pg_ctl
    "$psql" -X -q -h "$dir/pg" -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        >/dev/null <<SQL || return 1
CREATE ROLE dnc LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE dnc_test OWNER dnc;
CREATE DATABASE mlflow OWNER dnc;
SQL
    local pg=postgresql://dnc:$password@127.0.0.1:$pg_port

    local mlflow_port
    mlflow_port=$(dnc_servers__free_port) || return 1
    dnc_servers__log "MLflow server on 127.0.0.1:$mlflow_port (store: database mlflow;" \
        "PostgreSQL took $((SECONDS - t0))s)"
    # setsid: its own process group (any uvicorn workers included), stopped as one; ( ... & ):
    # not a job of an interactive shell. One worker: it serves requests from a thread pool, and
    # each worker takes ~20 s to start on 2 cores.
    (
        cd "$dir" || exit 1
        # No telemetry (no internet here), no job runner (huey consumers: GenAI jobs, unused).
        export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
        export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
        exec setsid sh -c \
            'echo $$ >"$0/mlflow.pid"; exec "$@"' "$dir" \
            "$DNC_SERVERS_PY" -m mlflow server --host 127.0.0.1 --port "$mlflow_port" \
            --workers 1 --backend-store-uri "$pg/mlflow" \
            --artifacts-destination "$dir/artifacts" \
            </dev/null >"$dir/mlflow.log" 2>&1 &
    )
    local waited=0
    until "$DNC_SERVERS_PY" -c 'import sys, urllib.request
sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).read().strip() != b"OK")' \
        "http://127.0.0.1:$mlflow_port/health" 2>/dev/null; do
        local pid
        pid=$(cat "$dir/mlflow.pid" 2>/dev/null || true)
        if [[ $waited -ge 120 ]] || { [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; } \
            || [[ -z $pid && $waited -ge 10 ]]; then
            dnc_servers__log "the MLflow server did not answer on /health after ${waited}s;" \
                "its log:"
            sed "s/$password/***/g" "$dir/mlflow.log" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done

    export DNC_TEST_POSTGRES_URL=$pg/dnc_test
    export DNC_TEST_MLFLOW_URI=http://127.0.0.1:$mlflow_port
    dnc_servers__log "ready in $((SECONDS - t0))s:" \
        "DNC_TEST_POSTGRES_URL=postgresql://dnc:***@127.0.0.1:$pg_port/dnc_test" \
        "DNC_TEST_MLFLOW_URI=$DNC_TEST_MLFLOW_URI"
}

# Stops what dnc_servers_start started (also after a failed start) and removes its folder.
dnc_servers_stop() {
    local dir=${DNC_SERVERS_DIR:-} pid i
    [[ -n $dir ]] || return 0
    pid=$(cat "$dir/mlflow.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for i in $(seq 50); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    if [[ -n ${DNC_SERVERS_PG_CTL:-} && -f $dir/pg/data/postmaster.pid ]]; then
        dnc_servers__as_owner "$DNC_SERVERS_PG_CTL" -D "$dir/pg/data" -m fast -w stop \
            >/dev/null 2>&1 || dnc_servers__log "pg_ctl stop failed"
    fi
    rm -rf "$dir"
    unset DNC_SERVERS_DIR DNC_SERVERS_PG_CTL DNC_TEST_POSTGRES_URL DNC_TEST_MLFLOW_URI
    dnc_servers__log "stopped"
}

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then  # sourced
    trap dnc_servers_stop EXIT
    if [[ $- != *i* ]]; then  # a script (.ci/run): stop the servers on Ctrl-C or a kill too
        trap 'exit 130' INT
        trap 'exit 143' TERM
    fi
    if ! dnc_servers_start; then
        dnc_servers_stop
        false
    fi
else
    set -euo pipefail
    trap dnc_servers_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    dnc_servers_start || exit 1
    if [[ $# -gt 0 ]]; then
        "$@"
    else
        echo "export DNC_TEST_POSTGRES_URL='$DNC_TEST_POSTGRES_URL'"
        echo "export DNC_TEST_MLFLOW_URI='$DNC_TEST_MLFLOW_URI'"
        echo "# Ctrl-C stops the servers" >&2
        while :; do sleep 3600 & wait $!; done  # wait: a TERM is handled at once
    fi
fi
