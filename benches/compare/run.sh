#!/usr/bin/env bash
# Hermes vs etcd vs Redis on this machine, with one load generator (`hermes bench`) for all.
#
# Starts a 3-node Hermes cluster (`hermes dev`, data in memory), a 3-member etcd cluster (data on
# tmpfs, linearizable reads) and a Redis primary with one replica, all on 127.0.0.1; runs the
# same closed-loop workload against each (1,000 keys, 256-byte values, 1 and 16 clients, 100 %,
# 10 % and 1 % writes); prints one table. Stops everything it started on exit, on failure and on
# Ctrl-C. See README.md beside this script.
#
# Environment (all optional):
#   DURATION_MS      length of each measured run (default 5000)
#   WARMUP_MS        unmeasured run before each measured one (default 1000; 0: none)
#   PRELOAD_MS       100 %-write run per system before everything, so reads find values (2000)
#   CLIENTS_LIST     client counts (default "1 16")
#   WRITE_RATIOS     write ratios (default "1.0 0.1 0.01")
#   REDIS_PLAIN_SET  1: also run Redis with plain SET (no WAIT), as one more row (default 0)
#   ETCD_DATA_PARENT where etcd's data directories go (default /dev/shm: tmpfs, no fsync cost)
#   ETCD_PORTS       three client ports (default "12379 22379 32379"); peer port = client + 1
#   REDIS_PORTS      primary and replica ports (default "16379 16380")
#   RESULTS_DIR      keep each run's JSON report there (default: a temporary directory, removed)
#   SKIP_INSTALL     1: do not install missing packages
#   SKIP_BUILD       1: use the hermes binary already built
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)

DURATION_MS=${DURATION_MS:-5000}
WARMUP_MS=${WARMUP_MS:-1000}
PRELOAD_MS=${PRELOAD_MS:-2000}
CLIENTS_LIST=${CLIENTS_LIST:-"1 16"}
WRITE_RATIOS=${WRITE_RATIOS:-"1.0 0.1 0.01"}
REDIS_PLAIN_SET=${REDIS_PLAIN_SET:-0}
ETCD_DATA_PARENT=${ETCD_DATA_PARENT:-/dev/shm}
read -r -a ETCD_CLIENT_PORTS <<<"${ETCD_PORTS:-12379 22379 32379}"
read -r -a REDIS_PORT_PAIR <<<"${REDIS_PORTS:-16379 16380}"
KEYS=1000
VALUE_BYTES=256
READY_TIMEOUT_S=60

log() { printf 'compare: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Cleanup: every process this script started, and its temporary directories.

PIDS=()
WORK_DIR=""
ETCD_DATA=""
KEEP_RESULTS=${RESULTS_DIR:+1}

# Sends SIGTERM to every started process, waits up to 10 s, then SIGKILLs what is left; also the
# Hermes nodes that `hermes dev` reported, in case it could not stop them.
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pids=("${PIDS[@]}")
    if [[ -n "$WORK_DIR" && -f "$WORK_DIR/hermes-dev.log" ]]; then
        local pid
        for pid in $(sed -n 's/.*  pid \([0-9][0-9]*\) .*/\1/p' "$WORK_DIR/hermes-dev.log"); do
            # Only a process still running from our directory (guards against a reused pid).
            if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$WORK_DIR"; then
                pids+=("$pid")
            fi
        done
    fi
    if ((${#pids[@]})); then
        log "stopping ${#pids[@]} processes"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        local waited=0 pid alive
        while ((waited < 100)); do
            alive=0
            for pid in "${pids[@]}"; do
                kill -0 "$pid" 2>/dev/null && alive=1
            done
            ((alive)) || break
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait 2>/dev/null || true
    fi
    [[ -n "$ETCD_DATA" ]] && rm -rf "$ETCD_DATA"
    if [[ -n "$WORK_DIR" ]]; then
        if [[ -n "$KEEP_RESULTS" ]]; then
            log "logs left in $WORK_DIR"
        else
            rm -rf "$WORK_DIR"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Packages and the build.

install_missing() {
    local wanted=() sudo=""
    command -v etcd >/dev/null || wanted+=(etcd-server)
    command -v redis-server >/dev/null || wanted+=(redis-server)
    command -v redis-cli >/dev/null || wanted+=(redis-tools)
    command -v protoc >/dev/null || wanted+=(protobuf-compiler)
    command -v python3 >/dev/null || wanted+=(python3)
    command -v curl >/dev/null || wanted+=(curl)
    ((${#wanted[@]})) || return 0
    [[ "${SKIP_INSTALL:-0}" == 1 ]] && die "missing packages: ${wanted[*]} (SKIP_INSTALL=1)"
    ((EUID == 0)) || sudo=sudo
    log "installing ${wanted[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${wanted[@]}" >&2
}

install_missing
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building hermes with etcd support (release)"
    cargo build --release -p hermes-cli --features etcd >&2
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
HERMES="$TARGET_DIR/release/hermes"
[[ -x "$HERMES" ]] || die "$HERMES not built"

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hermes-compare.XXXXXX")
RESULTS_DIR=${RESULTS_DIR:-$WORK_DIR/results}
mkdir -p "$RESULTS_DIR"

# Fails if something already listens on TCP port $1.
require_free_port() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "port $1 is already in use (set ETCD_PORTS / REDIS_PORTS to free ports)"
    fi
}

# Runs "$@" every 0.2 s until it succeeds, at most READY_TIMEOUT_S; $1 names what is awaited.
wait_until() {
    local what=$1 deadline=$((SECONDS + READY_TIMEOUT_S))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready after ${READY_TIMEOUT_S} s (logs: $WORK_DIR)"
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# Hermes: 3 nodes, data in memory (the default durability).

HERMES_DIR="$WORK_DIR/hermes"
mkdir -p "$HERMES_DIR"
log "starting Hermes (3 nodes)"
"$HERMES" dev --nodes 3 --dir "$HERMES_DIR" </dev/null >"$WORK_DIR/hermes-dev.log" 2>&1 &
PIDS+=($!)
hermes_node_active() {
    "$HERMES" --cluster "$HERMES_DIR/client.toml" --node "$1" --json status | grep -q '"Active"'
}
wait_until "Hermes client.toml" test -f "$HERMES_DIR/client.toml"
for node in 1 2 3; do
    wait_until "Hermes node $node" hermes_node_active "$node"
done

# ---------------------------------------------------------------------------------------------
# etcd: 3 members on 127.0.0.1, data on tmpfs.

ETCD_DATA=$(mktemp -d "$ETCD_DATA_PARENT/hermes-compare-etcd.XXXXXX")
initial_cluster=""
for index in 0 1 2; do
    port=${ETCD_CLIENT_PORTS[$index]}
    require_free_port "$port"
    require_free_port $((port + 1))
    initial_cluster+="${initial_cluster:+,}e$index=http://127.0.0.1:$((port + 1))"
done
log "starting etcd (3 members, data in $ETCD_DATA)"
ETCD_ENDPOINTS=""
for index in 0 1 2; do
    port=${ETCD_CLIENT_PORTS[$index]}
    peer=$((port + 1))
    ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}127.0.0.1:$port"
    etcd --name "e$index" --data-dir "$ETCD_DATA/e$index" \
        --listen-client-urls "http://127.0.0.1:$port" \
        --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$initial_cluster" --initial-cluster-token hermes-compare \
        --initial-cluster-state new --log-level warn \
        </dev/null >"$WORK_DIR/etcd-e$index.log" 2>&1 &
    PIDS+=($!)
done
for port in "${ETCD_CLIENT_PORTS[@]}"; do
    wait_until "etcd on port $port" sh -c "curl -fsS http://127.0.0.1:$port/health | grep -q '\"health\":\"true\"'"
done

# ---------------------------------------------------------------------------------------------
# Redis: a primary and one replica, no persistence.

REDIS_PRIMARY=${REDIS_PORT_PAIR[0]}
REDIS_REPLICA=${REDIS_PORT_PAIR[1]}
require_free_port "$REDIS_PRIMARY"
require_free_port "$REDIS_REPLICA"
log "starting Redis (primary :$REDIS_PRIMARY, replica :$REDIS_REPLICA)"
redis-server --port "$REDIS_PRIMARY" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$WORK_DIR" </dev/null >"$WORK_DIR/redis-primary.log" 2>&1 &
PIDS+=($!)
wait_until "Redis primary" redis-cli -p "$REDIS_PRIMARY" ping
redis-server --port "$REDIS_REPLICA" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$WORK_DIR" --replicaof 127.0.0.1 "$REDIS_PRIMARY" \
    </dev/null >"$WORK_DIR/redis-replica.log" 2>&1 &
PIDS+=($!)
redis_linked() {
    redis-cli -p "$REDIS_REPLICA" info replication | grep -q 'master_link_status:up' &&
        redis-cli -p "$REDIS_PRIMARY" info replication | grep -q 'connected_slaves:1'
}
wait_until "Redis replication link" redis_linked

# ---------------------------------------------------------------------------------------------
# The runs.

SYSTEMS=(hermes etcd redis)
[[ "$REDIS_PLAIN_SET" == 1 ]] && SYSTEMS+=(redis-set)

# Runs `hermes bench` against system $1 with the remaining arguments.
bench() {
    local system=$1
    shift
    local target=()
    case "$system" in
        hermes) target=(--cluster "$HERMES_DIR/client.toml" bench --target hermes) ;;
        etcd) target=(bench --target etcd --endpoints "$ETCD_ENDPOINTS") ;;
        redis) target=(bench --target redis --endpoints "127.0.0.1:$REDIS_PRIMARY" --redis-wait 1) ;;
        redis-set) target=(bench --target redis --endpoints "127.0.0.1:$REDIS_PRIMARY" --redis-wait 0) ;;
    esac
    "$HERMES" --json "${target[@]}" --keys "$KEYS" --value-bytes "$VALUE_BYTES" "$@" </dev/null
}

if ((PRELOAD_MS > 0)); then
    for system in "${SYSTEMS[@]}"; do
        log "preloading $system (16 clients, 100 % writes, $PRELOAD_MS ms)"
        bench "$system" --clients 16 --write-ratio 1 --duration-ms "$PRELOAD_MS" \
            >"$RESULTS_DIR/preload-$system.json"
    done
fi
for clients in $CLIENTS_LIST; do
    for ratio in $WRITE_RATIOS; do
        for system in "${SYSTEMS[@]}"; do
            if ((WARMUP_MS > 0)); then
                bench "$system" --clients "$clients" --write-ratio "$ratio" \
                    --duration-ms "$WARMUP_MS" >/dev/null
            fi
            log "$system: $clients clients, write ratio $ratio, $DURATION_MS ms"
            bench "$system" --clients "$clients" --write-ratio "$ratio" \
                --duration-ms "$DURATION_MS" >"$RESULTS_DIR/run-$system-$clients-$ratio.json"
        done
    done
done

# ---------------------------------------------------------------------------------------------
# The table.

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
memory_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
hermes_version=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
etcd_version=$(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')
redis_version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
echo "Hermes vs etcd vs Redis, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, ${cpu_model:-unknown CPU}, ${memory_gib} GiB, Linux $(uname -r)"
echo "versions: hermes $hermes_version, etcd ${etcd_version:-unknown}, redis-server \
${redis_version:-unknown}"
echo "workload: $KEYS keys, $VALUE_BYTES-byte values, closed loop, ${DURATION_MS} ms per run \
(after ${WARMUP_MS} ms warm-up); load generator and all servers share the machine"
echo
python3 "$ROOT/benches/compare/table.py" "$RESULTS_DIR"
