#!/usr/bin/env bash
# scripts/stack.sh - run casestream's backing services on loopback, no Docker.
#
#   PostgreSQL 15 and Redis 7   Debian packages, our own instances
#   Apache Kafka 4.1.2 (KRaft)  jars from Maven Central (scripts/kafka/pom.xml)
#   Elasticsearch 8.19.21       Maven Central integ-test-zip, security off
#   librdkafka 2.14.2           built from Debian's source package
#                               (scripts/librdkafka.sh), for the programs
#   hiredis 1.2.0 with TLS      built from Debian's source package
#                               (scripts/hiredis.sh), for the programs
#
# Everything (data, logs, pid files) lives under $CASESTREAM_STACK_DIR,
# default <repo>/.stack. Must run as root on Debian 12; every service runs as
# the unprivileged system user "casestream". PostgreSQL takes passwords
# (SCRAM) over TCP, for the roles casestream (schema owner),
# casestream_worker and casestream_reader; `env` prints their conninfos.
#
# Usage: scripts/stack.sh up [--kafka-brokers N]
#        scripts/stack.sh status|down|env|packages
#        scripts/stack.sh logs [service] [-f]
#        scripts/stack.sh start|stop|restart|crash|kill <service>
#        (crash: SIGKILL the service and its children, then start it again;
#         kill: SIGKILL it and leave it down until start)
#        scripts/stack.sh kafka-topics|kafka-configs|kafka-consumer-groups args...
#        (Kafka's own tools, --bootstrap-server set to the stack's brokers)
# Services: postgres (pg), redis, kafka, es (elasticsearch); with a cluster
# (up --kafka-brokers N), kafka is every broker and kafka-1 … kafka-N one.
#
# Environment (defaults avoid the standard ports; everything binds 127.0.0.1):
#   CASESTREAM_STACK_DIR             <repo>/.stack
#   CASESTREAM_PG_PORT               55432
#   CASESTREAM_REDIS_PORT            56379
#   CASESTREAM_KAFKA_BROKERS         1 (for up; --kafka-brokers wins; other
#                                    commands use what the last up started)
#   CASESTREAM_KAFKA_PORT            59092 (broker i of a cluster: +i-1)
#   CASESTREAM_KAFKA_CONTROLLER_PORT 59093 (broker i of a cluster: +i-1;
#                                    default the port after the brokers')
#   CASESTREAM_ES_PORT               59200
#   CASESTREAM_ES_TRANSPORT_PORT     59300
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_DIR=$(dirname "$SCRIPT_DIR")

STACK_DIR=${CASESTREAM_STACK_DIR:-$REPO_DIR/.stack}
[[ $STACK_DIR == /* ]] || STACK_DIR=$PWD/$STACK_DIR
LOG_DIR=$STACK_DIR/log
RUN_DIR=$STACK_DIR/run

PG_PORT=${CASESTREAM_PG_PORT:-55432}
REDIS_PORT=${CASESTREAM_REDIS_PORT:-56379}
KAFKA_PORT=${CASESTREAM_KAFKA_PORT:-59092}
KAFKA_CTRL_PORT=${CASESTREAM_KAFKA_CONTROLLER_PORT:-59093}
ES_PORT=${CASESTREAM_ES_PORT:-59200}
ES_TRANSPORT_PORT=${CASESTREAM_ES_TRANSPORT_PORT:-59300}

SVC_USER=casestream
PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR=$STACK_DIR/pg
PG_DATA=$PG_DIR/data
REDIS_DIR=$STACK_DIR/redis
KAFKA_DIR=$STACK_DIR/kafka
KAFKA_POM=$SCRIPT_DIR/kafka/pom.xml
KAFKA_VERSION=4.1.2
# Jars per version: a checkout that moves to another version fetches its own.
KAFKA_LIBS=$KAFKA_DIR/libs-$KAFKA_VERSION
# Written next to the data at format time: the version that formatted it.
KAFKA_FORMATTED=$KAFKA_DIR/data/casestream-formatted-by
ES_VERSION=8.19.21
ES_DIR=$STACK_DIR/es
ES_HOME=$ES_DIR/elasticsearch-$ES_VERSION

PG_TIMEOUT=60
REDIS_TIMEOUT=30
KAFKA_TIMEOUT=90
ES_TIMEOUT=180
STOP_TIMEOUT=30

# librdkafka is not among them: scripts/librdkafka.sh builds a current one; libhiredis-dev
# (0.14, no TLS) is only for `make SYSTEM_HIREDIS=1`: scripts/hiredis.sh builds a current one.
PACKAGES=(postgresql-15 postgresql-contrib redis-server maven
  libpq-dev libjansson-dev libhiredis-dev libmicrohttpd-dev check libssl-dev
  libcurl4-openssl-dev pkg-config kcat clang-format valgrind unzip curl
  procps clang groff-base openssl wrk jq)

SERVICES=(postgres redis kafka es)

JAVA_HOME17=
ES_LAUNCHER_PID=
KAFKA_T0=$SECONDS
ES_T0=$SECONDS

# ---------------------------------------------------------------- helpers

say() { printf 'stack: %s\n' "$*"; }
warn() { printf 'stack: %s\n' "$*" >&2; }
die() {
  printf 'stack: error: %s\n' "$*" >&2
  exit 1
}
# A configuration error (a bad option or port): exit 78, as the programs do.
die_config() {
  printf 'stack: error: invalid configuration: %s\n' "$*" >&2
  exit 78
}

# Run a command as the service user, from a directory it can enter.
as_user() { (cd / && runuser -u "$SVC_USER" -- "$@"); }
# As as_user, but exec'ing the command in this process (no runuser parent),
# so a pid taken before it is the service's own.
as_user_exec() { exec setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups -- "$@"; }

# True if something accepts TCP connections on 127.0.0.1:$1.
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
port_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# Fail loudly if a port we are about to bind is already taken.
require_free_port() { # name port variable
  local name=$1 port=$2 var=$3 holder=
  port_open "$port" || return 0
  if command -v ss >/dev/null; then
    holder=$(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\))).*/\1/p' | head -n1)
  fi
  die "$name: port 127.0.0.1:$port is already in use by another process${holder:+ ($holder)}; stop it or set $var"
}

# Print the pid in pid file $1 if it names a live process whose command
# line contains every further argument; fail otherwise.
live_pid() {
  local file=$1 pid cmd pat
  shift
  [[ -s $file ]] || return 1
  read -r pid <"$file" || true
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  for pat in "$@"; do
    [[ $cmd == *"$pat"* ]] || return 1
  done
  printf '%s\n' "$pid"
}

# Send SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL.
terminate() { # name pid
  local name=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  warn "$name pid $pid still running after ${STOP_TIMEOUT}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
}

# Print the tail of the given logs to stderr and exit non-zero.
fail_with_logs() { # message logfile...
  local msg=$1 f
  shift
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf '==== last 40 lines of %s ====\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
  die "$msg"
}

is_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# ---------------------------------------------------------------- prepare

find_java17() {
  local cand
  for cand in "$(readlink -f "$(command -v java 2>/dev/null || true)" 2>/dev/null || true)" \
    /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*17*/bin/java; do
    [[ -x $cand ]] || continue
    if "$cand" -version 2>&1 | grep -q 'version "17\.'; then
      JAVA_HOME17=$(dirname "$(dirname "$(readlink -f "$cand")")")
      return 0
    fi
  done
  return 1
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
  done
  find_java17 || missing+=(openjdk-17-jre-headless)
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  find_java17 || die "no Java 17 found after installing openjdk-17-jre-headless"
}

ensure_user() {
  id -u "$SVC_USER" >/dev/null 2>&1 && return 0
  say "creating system user $SVC_USER"
  useradd --system --user-group --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin "$SVC_USER"
}

# PostgreSQL and Elasticsearch run as $SVC_USER, which must be able to walk
# down to the state dir. A mktemp -d clone (mode 700) blocks that.
ensure_reachable() {
  local d=$STACK_DIR fixed=()
  as_user test -x "$STACK_DIR" && return 0
  while [[ $d != / ]]; do
    d=$(dirname "$d")
    if [[ -z $(find "$d" -maxdepth 0 -perm -o+x) ]]; then
      chmod o+x "$d"
      fixed+=("$d")
    fi
  done
  say "chmod o+x ${fixed[*]:-(nothing)} so user $SVC_USER can reach $STACK_DIR"
  as_user test -x "$STACK_DIR" || die "user $SVC_USER still cannot reach $STACK_DIR"
}

prepare() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, manages user $SVC_USER)"
  install_packages
  find_java17 || die "Java 17 not found"
  ensure_user
  mkdir -p "$LOG_DIR" "$RUN_DIR" "$REDIS_DIR" "$KAFKA_DIR" "$PG_DIR" "$ES_DIR"
  chown "$SVC_USER:" "$PG_DIR" "$ES_DIR"
  # Every service runs as $SVC_USER: it writes its logs, pid files and data.
  chown -R "$SVC_USER:" "$LOG_DIR" "$RUN_DIR" "$REDIS_DIR"
  ensure_reachable
  # The libraries the programs link against; once per clone and version.
  CASESTREAM_STACK_DIR=$STACK_DIR "$SCRIPT_DIR/librdkafka.sh" build
  CASESTREAM_STACK_DIR=$STACK_DIR "$SCRIPT_DIR/hiredis.sh" build
}

# ---------------------------------------------------------------- postgres

# Unix sockets are limited to 107 bytes; deep clone paths fall back to /tmp.
pg_sockdir() {
  local d=$PG_DIR/sock
  if ((${#d} + 16 > 107)); then
    d=/tmp/casestream-pg-$(printf '%s' "$STACK_DIR" | cksum | cut -d' ' -f1)
  fi
  printf '%s\n' "$d"
}

pg_pid() { live_pid "$PG_DATA/postmaster.pid" "$PG_DATA"; }

# The stack's own administration goes through the Unix socket (a directory
# only root and $SVC_USER can enter) as the superuser "postgres"; programs
# connect over TCP with a password (SCRAM) as one of casestream's roles.
PG_SUPERUSER=postgres
pg_psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(pg_sockdir)" -p "$PG_PORT" -U "$PG_SUPERUSER" "$@"; }

pg_hba() {
  cat >"$PG_DATA/pg_hba.conf" <<EOF
# Written by scripts/stack.sh; edits are overwritten on start.
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
EOF
  chown "$SVC_USER:" "$PG_DATA/pg_hba.conf"
}

# The roles (DESIGN §7): casestream owns the schema and migrates it,
# casestream_worker applies and indexes, casestream_reader reads. None is a
# superuser. A cluster made by an older stack.sh has casestream as its
# superuser: "postgres" is created and casestream loses the privilege.
pg_roles() {
  if ! pg_psql -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
    PG_SUPERUSER=casestream pg_psql -d postgres -c "CREATE ROLE postgres WITH LOGIN SUPERUSER" ||
      die "postgres: cannot create the superuser postgres"
  fi
  pg_psql -d postgres >/dev/null <<'SQL' || die "postgres: cannot set up casestream's roles"
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['casestream', 'casestream_worker', 'casestream_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I', r);
        END IF;
        -- The owner may create databases (the tests make scratch ones); the programs' roles not.
        EXECUTE format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEROLE %s PASSWORD %L', r,
                       CASE WHEN r = 'casestream' THEN 'CREATEDB' ELSE 'NOCREATEDB' END, r);
    END LOOP;
END $$;
SQL
}

pg_start() {
  local pid sock t0=$SECONDS
  sock=$(pg_sockdir)
  if pid=$(pg_pid); then
    say "reusing postgres pid $pid"
    pg_hba
    as_user "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null
  else
    require_free_port postgres "$PG_PORT" CASESTREAM_PG_PORT
    if [[ ! -s $PG_DATA/PG_VERSION ]]; then
      say "postgres: initdb $PG_DATA"
      rm -rf "$PG_DATA"
      as_user "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/postgres-initdb.log" 2>&1 ||
        fail_with_logs "postgres: initdb failed" "$LOG_DIR/postgres-initdb.log"
    fi
    pg_hba
    mkdir -p "$sock"
    chmod 700 "$sock"
    chown "$SVC_USER:" "$sock"
    touch "$LOG_DIR/postgres.log"
    chown "$SVC_USER:" "$LOG_DIR/postgres.log"
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    as_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOG_DIR/postgres.log" \
      -o "-p $PG_PORT -k '$sock' -c listen_addresses=127.0.0.1 -c shared_buffers=128MB -c max_connections=200" \
      start -w -t "$PG_TIMEOUT" >/dev/null ||
      fail_with_logs "postgres did not start within ${PG_TIMEOUT}s" "$LOG_DIR/postgres.log"
    pid=$(pg_pid) || fail_with_logs "postgres started but postmaster.pid is unusable" "$LOG_DIR/postgres.log"
  fi
  printf '%s\n' "$pid" >"$RUN_DIR/postgres.pid"
  pg_roles
  if [[ -z $(pg_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'casestream'") ]]; then
    pg_psql -d postgres -c "CREATE DATABASE casestream OWNER casestream"
  fi
  say "postgres ready on 127.0.0.1:$PG_PORT ($((SECONDS - t0))s)"
}

pg_stop() {
  local pid
  if pid=$(pg_pid); then
    say "postgres: stopping pid $pid"
    as_user "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast -w -t "$STOP_TIMEOUT" >/dev/null ||
      die "postgres: pg_ctl stop failed"
  else
    say "postgres: not running"
  fi
  rm -f "$RUN_DIR/postgres.pid"
}

pg_health() {
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U casestream -d casestream -t 3 || return 1
  pg_psql -d casestream -Atc 'SHOW server_version' 2>/dev/null | sed 's/ .*//'
}

# ---------------------------------------------------------------- redis

redis_pid() { live_pid "$RUN_DIR/redis.pid" redis-server ":$REDIS_PORT"; }

redis_start() {
  local pid i t0=$SECONDS
  if pid=$(redis_pid); then
    say "reusing redis pid $pid"
  else
    require_free_port redis "$REDIS_PORT" CASESTREAM_REDIS_PORT
    rm -f "$RUN_DIR/redis.pid"
    say "redis: starting on 127.0.0.1:$REDIS_PORT"
    as_user redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
      --daemonize yes --pidfile "$RUN_DIR/redis.pid" \
      --logfile "$LOG_DIR/redis.log" --save "" --appendonly no ||
      fail_with_logs "redis-server failed to start" "$LOG_DIR/redis.log"
  fi
  for ((i = 0; i < REDIS_TIMEOUT * 5; i++)); do
    if redis_health >/dev/null && redis_pid >/dev/null; then
      say "redis ready on 127.0.0.1:$REDIS_PORT ($((SECONDS - t0))s)"
      return 0
    fi
    sleep 0.2
  done
  fail_with_logs "redis not ready within ${REDIS_TIMEOUT}s" "$LOG_DIR/redis.log"
}

redis_stop() {
  local pid
  if pid=$(redis_pid); then
    say "redis: stopping pid $pid"
    terminate redis "$pid"
  else
    say "redis: not running"
  fi
  rm -f "$RUN_DIR/redis.pid"
}

redis_health() {
  [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] || return 1
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server 2>/dev/null |
    sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p'
}

# ---------------------------------------------------------------- kafka

# One broker (the default) or a cluster of KAFKA_BROKERS (up --kafka-brokers
# N). Every broker function takes a node number: 0 is the single broker, with
# the paths and ports stack.sh has always used; 1..N are the brokers of a
# cluster, each a KRaft broker and controller (combined mode, N voters) with
# its own directory $KAFKA_DIR/cluster-N/broker-i (configuration and data),
# logs log/kafka-i-server.log and log/kafka-i.out, pid file run/kafka-i.pid,
# and its own ports: CASESTREAM_KAFKA_PORT+i-1 for clients and
# CASESTREAM_KAFKA_CONTROLLER_PORT+i-1 for the quorum (the latter defaults to
# the first port after the brokers' with a cluster: 59095-59097 for three).
KAFKA_BROKERS=1
KAFKA_NODES=(0)
KAFKA_CLUSTER_DIR=
# The count the last `up` started, for every other command.
KAFKA_COUNT_FILE=$RUN_DIR/kafka-brokers

kafka_layout() { # count
  local n=$1 i
  KAFKA_BROKERS=$n
  KAFKA_NODES=(0)
  KAFKA_CLUSTER_DIR=
  if ((n > 1)); then
    KAFKA_NODES=()
    for ((i = 1; i <= n; i++)); do KAFKA_NODES+=("$i"); done
    KAFKA_CLUSTER_DIR=$KAFKA_DIR/cluster-$n
    KAFKA_CTRL_PORT=${CASESTREAM_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + n))}
  else
    KAFKA_CTRL_PORT=${CASESTREAM_KAFKA_CONTROLLER_PORT:-59093}
  fi
}

# The broker count `up` was asked for (flag, then CASESTREAM_KAFKA_BROKERS, then 1).
kafka_count_valid() { [[ $1 =~ ^[1-9]$ ]]; }

kafka_recorded_count() {
  local n=
  [[ -s $KAFKA_COUNT_FILE ]] && read -r n <"$KAFKA_COUNT_FILE"
  kafka_count_valid "${n:-}" || n=1
  printf '%s\n' "$n"
}

# Every port the stack binds must be its own.
kafka_check_ports() {
  local -A seen=()
  local name port n
  local -a all=("postgres $PG_PORT" "redis $REDIS_PORT" "es $ES_PORT" "es-transport $ES_TRANSPORT_PORT")
  for n in "${KAFKA_NODES[@]}"; do
    all+=("$(kafka_name "$n") $(kafka_port "$n")" "$(kafka_name "$n")-controller $(kafka_ctrl_port "$n")")
  done
  for n in "${all[@]}"; do
    read -r name port <<<"$n"
    [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) ||
      die_config "$name: port '$port' is not a TCP port"
    [[ -z ${seen[$port]:-} ]] ||
      die_config "$name and ${seen[$port]} would both listen on port $port${KAFKA_CLUSTER_DIR:+ (broker i of a cluster listens on CASESTREAM_KAFKA_PORT+i-1, its controller on CASESTREAM_KAFKA_CONTROLLER_PORT+i-1)}: move one of them"
    seen[$port]=$name
  done
}

kafka_name() { if (($1)); then echo "kafka-$1"; else echo kafka; fi; }
kafka_dir() { if (($1)); then echo "$KAFKA_CLUSTER_DIR/broker-$1"; else echo "$KAFKA_DIR"; fi; }
kafka_port() { echo $((KAFKA_PORT + ($1 ? $1 - 1 : 0))); }
kafka_ctrl_port() { echo $((KAFKA_CTRL_PORT + ($1 ? $1 - 1 : 0))); }
kafka_node_id() { echo $(($1 ? $1 : 1)); }
kafka_pidfile() { if (($1)); then echo "$RUN_DIR/kafka-$1.pid"; else echo "$RUN_DIR/kafka.pid"; fi; }
kafka_server_log() { if (($1)); then echo "$LOG_DIR/kafka-$1-server.log"; else echo "$LOG_DIR/kafka-server.log"; fi; }
kafka_out_log() { if (($1)); then echo "$LOG_DIR/kafka-$1.out"; else echo "$LOG_DIR/kafka.out"; fi; }

kafka_pid() { # node
  live_pid "$(kafka_pidfile "$1")" kafka.Kafka "$(kafka_dir "$1")/server.properties"
}

kafka_java() { # main-class args...
  "$JAVA_HOME17/bin/java" -Dlog4j2.configurationFile="$(kafka_dir "${KAFKA_NODES[0]}")/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

kafka_fetch() {
  [[ -d $KAFKA_LIBS ]] && return 0
  say "kafka: fetching Kafka $KAFKA_VERSION broker jars from Maven Central"
  rm -rf "$KAFKA_LIBS.tmp"
  JAVA_HOME=$JAVA_HOME17 mvn -q -B -f "$KAFKA_POM" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" \
    >"$LOG_DIR/maven.log" 2>&1 ||
    fail_with_logs "kafka: maven could not fetch the jars" "$LOG_DIR/maven.log"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
  # The jars of the version before (3.9.1 kept them in libs/).
  rm -rf "$KAFKA_DIR/libs"
}

# Kafka's command-line tools (kafka-topics, kafka-consumer-groups) live in
# the kafka-tools jar, which the broker does not need: fetched on first use,
# next to the broker's jars (whose other dependencies it shares).
KAFKA_TOOLS=$KAFKA_DIR/tools-$KAFKA_VERSION
kafka_fetch_tools() {
  [[ -s $KAFKA_TOOLS/kafka-tools-$KAFKA_VERSION.jar ]] && return 0
  kafka_fetch
  say "kafka: fetching kafka-tools $KAFKA_VERSION from Maven Central"
  JAVA_HOME=$JAVA_HOME17 mvn -q -B dependency:copy \
    -Dartifact="org.apache.kafka:kafka-tools:$KAFKA_VERSION" -DoutputDirectory="$KAFKA_TOOLS" \
    >"$LOG_DIR/maven.log" 2>&1 ||
    fail_with_logs "kafka: maven could not fetch kafka-tools" "$LOG_DIR/maven.log"
}

# Run one of Kafka's tools against the stack's brokers (their warnings on stderr).
kafka_tool() { # kafka-topics|kafka-configs|kafka-consumer-groups args...
  local tool=$1 class
  shift
  case $tool in
  kafka-topics) class=org.apache.kafka.tools.TopicCommand ;;
  kafka-configs) class=kafka.admin.ConfigCommand ;;
  kafka-consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  *) die "unknown Kafka tool '$tool'" ;;
  esac
  find_java17 || die "Java 17 not found (scripts/stack.sh up installs it)"
  [[ $(id -u) -eq 0 || -s $KAFKA_TOOLS/kafka-tools-$KAFKA_VERSION.jar ]] ||
    die "kafka-tools is not fetched yet: run this once as root"
  kafka_fetch_tools
  "$JAVA_HOME17/bin/java" -Xmx256m -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/tools-log4j2.properties" \
    -cp "$KAFKA_LIBS/*:$KAFKA_TOOLS/*" "$class" --bootstrap-server "$(kafka_bootstrap)" "$@"
}

kafka_bootstrap() {
  local n list=
  for n in "${KAFKA_NODES[@]}"; do list+="${list:+,}127.0.0.1:$(kafka_port "$n")"; done
  printf '%s\n' "$list"
}

# A broker still running from jars of another version (started by an older
# stack.sh) is stopped, so that this version's starts in its place.
kafka_stop_other_version() { # node
  local pid
  pid=$(kafka_pid "$1") || return 0
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) != *"$KAFKA_LIBS/"* ]] || return 0
  say "$(kafka_name "$1"): pid $pid runs another Kafka version than $KAFKA_VERSION: stopping it"
  terminate kafka "$pid"
  rm -f "$(kafka_pidfile "$1")"
}

kafka_configure() { # node
  local n=$1 dir voters= rf=1 isr=1 i
  dir=$(kafka_dir "$n")
  mkdir -p "$dir"
  if ((n)); then
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do
      voters+="${voters:+,}$i@127.0.0.1:$(kafka_ctrl_port "$i")"
    done
    # Internal topics on three brokers (or all, if fewer), min.insync 2 with three.
    rf=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3))
    isr=$((rf >= 3 ? 2 : 1))
  else
    voters=1@127.0.0.1:$KAFKA_CTRL_PORT
  fi
  cat >"$dir/server.properties" <<EOP
# Written by scripts/stack.sh; edits are overwritten on start.
process.roles=broker,controller
node.id=$(kafka_node_id "$n")
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$n"),CONTROLLER://127.0.0.1:$(kafka_ctrl_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
# The consumer group protocol (KIP-848; casestream's default, group-protocol):
# session timeout and heartbeat interval are the broker's. A member that
# dies is noticed after 6 s (the broker's minimum by default is 45 s), as the
# classic protocol's session.timeout.ms=6000 of the tests did.
group.consumer.min.session.timeout.ms=6000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=500
# A 1 MiB submission plus 64 KiB for key, headers and record overhead (DESIGN §2).
message.max.bytes=1114112
# A deleted topic's files go 1 s after the delete (Kafka's default is 60 s), so that
# the bench's next phase does not pay for an earlier one's topics in the middle.
log.segment.delete.delay.ms=1000
EOP
  if ((n)); then
    # A follower fetches as large a batch as a client may send.
    printf 'replica.fetch.max.bytes=1114112\n' >>"$dir/server.properties"
  fi
  cat >"$dir/log4j2.properties" <<EOP
# Written by scripts/stack.sh (Kafka 4 logs through log4j2).
appender.file.type=File
appender.file.name=file
appender.file.fileName=$(kafka_server_log "$n")
appender.file.append=true
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
logger.request.name=kafka.request.logger
logger.request.level=WARN
logger.clients.name=org.apache.kafka.clients
logger.clients.level=WARN
EOP
  ((n)) || rm -f "$KAFKA_DIR/log4j.properties"
}

# Storage formatted by the Kafka 3.9 of an older stack.sh (no stamp) or by
# another version is formatted anew: it holds test data only, and an
# upgraded 3.9 cluster would keep its 3.9 metadata version, without the
# consumer group protocol, until its features were upgraded by hand. The
# brokers of a cluster share one cluster id (cluster-N/cluster-id); a broker
# whose storage is missing is formatted with it, and when one broker's
# storage is of another version, the whole cluster is formatted anew.
kafka_format() {
  local n data by id= fresh=0
  for n in "${KAFKA_NODES[@]}"; do
    data=$(kafka_dir "$n")/data
    [[ -s $data/meta.properties ]] || continue
    by=
    [[ -s $data/casestream-formatted-by ]] && read -r by <"$data/casestream-formatted-by"
    [[ $by == "$KAFKA_VERSION" ]] && continue
    say "kafka: $data was formatted by Kafka ${by:-3.9 (an older stack.sh)}, not $KAFKA_VERSION: deleting its topics (test data only) and formatting it anew"
    fresh=1
  done
  if ((fresh)); then
    for n in "${KAFKA_NODES[@]}"; do rm -rf "$(kafka_dir "$n")/data"; done
    [[ -z $KAFKA_CLUSTER_DIR ]] || rm -f "$KAFKA_CLUSTER_DIR/cluster-id"
  fi
  [[ -n $KAFKA_CLUSTER_DIR && -s $KAFKA_CLUSTER_DIR/cluster-id ]] && read -r id <"$KAFKA_CLUSTER_DIR/cluster-id"
  for n in "${KAFKA_NODES[@]}"; do
    data=$(kafka_dir "$n")/data
    [[ -s $data/meta.properties ]] && continue
    if [[ -z $id ]]; then
      id=$(kafka_java kafka.tools.StorageTool random-uuid | tail -n1)
      [[ -n $id ]] || die "kafka: StorageTool random-uuid printed nothing"
      [[ -z $KAFKA_CLUSTER_DIR ]] || printf '%s\n' "$id" >"$KAFKA_CLUSTER_DIR/cluster-id"
    fi
    say "$(kafka_name "$n"): formatting storage, cluster id $id"
    kafka_java kafka.tools.StorageTool format -t "$id" \
      -c "$(kafka_dir "$n")/server.properties" >>"$(kafka_out_log "$n")" 2>&1 ||
      fail_with_logs "$(kafka_name "$n"): storage format failed" "$(kafka_out_log "$n")"
    printf '%s\n' "$KAFKA_VERSION" >"$data/casestream-formatted-by"
  done
}

# Jars, configuration and storage of every broker of the layout.
kafka_prepare() {
  local n
  kafka_fetch
  for n in "${KAFKA_NODES[@]}"; do kafka_configure "$n"; done
  kafka_format
}

kafka_launch() { # node (kafka_prepare first)
  local n=$1 pid name dir
  name=$(kafka_name "$n")
  dir=$(kafka_dir "$n")
  kafka_stop_other_version "$n"
  if pid=$(kafka_pid "$n"); then
    say "reusing $name pid $pid"
    return 0
  fi
  require_free_port "$name" "$(kafka_port "$n")" CASESTREAM_KAFKA_PORT
  require_free_port "$name controller" "$(kafka_ctrl_port "$n")" CASESTREAM_KAFKA_CONTROLLER_PORT
  rm -f "$(kafka_pidfile "$n")"
  chown -R "$SVC_USER:" "$dir/data"
  # log4j2 creates the log file as soon as a tool starts: the storage tool
  # (run as root) must not leave it unwritable for the broker.
  touch "$(kafka_server_log "$n")"
  chown "$SVC_USER:" "$(kafka_server_log "$n")"
  KAFKA_LOG_MARK[$n]=$(stat -c %s "$(kafka_server_log "$n")")
  say "$name: starting on 127.0.0.1:$(kafka_port "$n") (controller $(kafka_ctrl_port "$n"))"
  # exec chain keeps one pid: subshell -> setpriv -> setsid -> nohup -> java.
  # The JVM options of Kafka's own launcher (kafka-run-class.sh), with a small fixed heap.
  (cd "$dir" && as_user_exec setsid nohup "$JAVA_HOME17/bin/java" -Xms512m -Xmx512m \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties") \
    >>"$(kafka_out_log "$n")" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$(kafka_pidfile "$n")"
}

# Where each broker's log stood at its launch.
declare -A KAFKA_LOG_MARK=()

# The stack's ports lie in Linux's ephemeral range (32768-60999): while a
# broker is down, a client reconnecting to it can be given its port as its
# own address (a TCP self-connect), and the broker restarting then cannot
# bind it until the client lets go. Such a start is tried again.
kafka_bind_failed() { # node
  tail -c "+$((${KAFKA_LOG_MARK[$1]:-0} + 1))" "$(kafka_server_log "$1")" 2>/dev/null |
    grep 'failed to bind to 127\.0\.0\.1:[0-9]*: Address already in use' >/dev/null
}

# Wait for brokers launched since KAFKA_T0: each one answers metadata that
# lists itself (a broker of a cluster is listed once the quorum has it).
kafka_wait() { # node...
  local t0=$KAFKA_T0 n launched binds
  for n in "$@"; do
    binds=0
    while :; do
      # Right after the launch the pid may not have exec'd java yet, so ask
      # whether it is alive, not whether it is the broker already.
      launched=$(cat "$(kafka_pidfile "$n")" 2>/dev/null) || launched=
      if [[ -z $launched ]] || ! kill -0 "$launched" 2>/dev/null; then
        if kafka_bind_failed "$n" && ((++binds <= 10)); then
          say "$(kafka_name "$n"): a port of it is taken by a client connection's own address: starting it again in 3 s"
          sleep 3
          kafka_launch "$n"
          t0=$SECONDS
          continue
        fi
        fail_with_logs "$(kafka_name "$n") exited during startup" "$(kafka_server_log "$n")" "$(kafka_out_log "$n")"
      fi
      if port_open "$(kafka_port "$n")" && kafka_health "$n" >/dev/null; then
        say "$(kafka_name "$n") ready on 127.0.0.1:$(kafka_port "$n") ($((SECONDS - t0))s)"
        break
      fi
      ((SECONDS - t0 < KAFKA_TIMEOUT)) ||
        fail_with_logs "$(kafka_name "$n") not ready within ${KAFKA_TIMEOUT}s" "$(kafka_server_log "$n")" "$(kafka_out_log "$n")"
      sleep 1
    done
  done
}

kafka_start() { # node...
  local n
  kafka_prepare
  KAFKA_T0=$SECONDS
  for n in "$@"; do kafka_launch "$n"; done
  kafka_wait "$@"
}

kafka_stop() { # node...
  local n
  local -A pids=()
  # Brokers of a cluster stop together: the last one left alone would wait
  # for a controller quorum to shut down, until it is killed.
  for n in "$@"; do
    if pids[$n]=$(kafka_pid "$n"); then kill -TERM "${pids[$n]}" 2>/dev/null || true; fi
  done
  for n in "$@"; do
    if [[ -n ${pids[$n]:-} ]]; then
      say "$(kafka_name "$n"): stopping pid ${pids[$n]}"
      terminate kafka "${pids[$n]}"
    else
      say "$(kafka_name "$n"): not running"
    fi
    rm -f "$(kafka_pidfile "$n")"
  done
}

kafka_health() { # node
  local meta jar n=$1
  meta=$(timeout 15 kcat -b "127.0.0.1:$(kafka_port "$n")" -L -m 5 2>/dev/null) || return 1
  [[ $meta == *"broker $(kafka_node_id "$n") at 127.0.0.1:$(kafka_port "$n")"* ]] || return 1
  jar=$(find "$KAFKA_LIBS" -maxdepth 1 -name 'kafka_2.13-*.jar' 2>/dev/null | head -n1)
  jar=${jar##*/kafka_2.13-}
  printf '%s\n' "${jar%.jar}"
}

# A cluster's consumer offsets get min.insync.replicas 2 (with three
# brokers) like the topics it carries: the group coordinator creates
# __consumer_offsets on first use (replicated offsets.topic.replication.factor
# times) without that setting, so `up` makes it exist (a coordinator lookup)
# and sets it.
kafka_internal_topics() {
  local i
  ((KAFKA_BROKERS >= 3)) || return 0
  kafka_tool kafka-consumer-groups --describe --group casestream-stack-probe >/dev/null 2>&1 || true
  for ((i = 0; i < 60; i++)); do
    [[ $(timeout 15 kcat -b "$(kafka_bootstrap)" -L -t __consumer_offsets 2>/dev/null) == *"partition 0,"* ]] && break
    sleep 1
  done
  kafka_tool kafka-configs --alter --entity-type topics --entity-name __consumer_offsets \
    --add-config min.insync.replicas=2 >/dev/null ||
    die "kafka: could not set min.insync.replicas on __consumer_offsets"
  say "kafka: __consumer_offsets replicated $((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3)) times, min.insync.replicas 2"
}

# ---------------------------------------------------------------- elasticsearch

# ES writes its own pid file (as $SVC_USER, so inside $ES_DIR); once it is
# up we copy it to $RUN_DIR/es.pid like the others.
es_pid() {
  live_pid "$RUN_DIR/es.pid" org.elasticsearch.bootstrap.Elasticsearch "$ES_HOME" ||
    live_pid "$ES_DIR/es.pid" org.elasticsearch.bootstrap.Elasticsearch "$ES_HOME"
}

es_fetch() {
  local zip=$ES_DIR/dist/elasticsearch-$ES_VERSION.zip
  [[ -x $ES_HOME/bin/elasticsearch ]] && return 0
  if [[ ! -s $zip ]]; then
    say "es: fetching elasticsearch $ES_VERSION integ-test-zip from Maven Central"
    JAVA_HOME=$JAVA_HOME17 mvn -q -B dependency:copy \
      -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
      -DoutputDirectory="$ES_DIR/dist" >"$LOG_DIR/maven.log" 2>&1 ||
      fail_with_logs "es: maven could not fetch elasticsearch" "$LOG_DIR/maven.log"
  fi
  rm -rf "$ES_DIR/unpack"
  unzip -q "$zip" -d "$ES_DIR/unpack"
  mv "$ES_DIR/unpack/elasticsearch-$ES_VERSION" "$ES_HOME"
  rm -rf "$ES_DIR/unpack"
  # The distribution an older stack.sh unpacked (its data stays: the same
  # minor version reads it).
  rm -rf "$ES_DIR/home"
  find "$ES_DIR/dist" -maxdepth 1 -name 'elasticsearch-*.zip' ! -name "${zip##*/}" -delete
}

# A node still running from another distribution (started by an older
# stack.sh) is stopped, so that this version's starts in its place.
es_stop_other_version() {
  local pid
  pid=$(live_pid "$RUN_DIR/es.pid" org.elasticsearch.bootstrap.Elasticsearch "$ES_DIR/" ||
    live_pid "$ES_DIR/es.pid" org.elasticsearch.bootstrap.Elasticsearch "$ES_DIR/") || return 0
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) != *"$ES_HOME"* ]] || return 0
  say "es: pid $pid runs another Elasticsearch version than $ES_VERSION: stopping it"
  terminate es "$pid"
  rm -f "$RUN_DIR/es.pid" "$ES_DIR/es.pid"
}

es_configure() {
  # Not set, because the integ-test-zip lacks the module that defines them
  # and ES refuses to start on unknown settings:
  #   ingest.geoip.downloader.enabled (no ingest-geoip module; nothing to
  #   download anyway), xpack.ml.* (no ml module).
  # xpack.security.enabled is known: the zip ships x-pack-core/-security.
  cat >"$ES_HOME/config/elasticsearch.yml" <<EOF
# Written by scripts/stack.sh; edits are overwritten on start.
cluster.name: casestream
node.name: casestream-1
path.data: "$ES_DIR/data"
path.logs: "$ES_DIR/logs"
network.host: 127.0.0.1
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
discovery.type: single-node
xpack.security.enabled: false
action.destructive_requires_name: false
cluster.routing.allocation.disk.threshold_enabled: false
EOF
}

es_launch() {
  local pid
  ES_LAUNCHER_PID=
  ES_T0=$SECONDS
  es_stop_other_version
  if pid=$(es_pid); then
    say "reusing es pid $pid"
    return 0
  fi
  require_free_port es "$ES_PORT" CASESTREAM_ES_PORT
  require_free_port "es transport" "$ES_TRANSPORT_PORT" CASESTREAM_ES_TRANSPORT_PORT
  rm -f "$RUN_DIR/es.pid" "$ES_DIR/es.pid"
  es_fetch
  es_configure
  mkdir -p "$ES_DIR/data" "$ES_DIR/logs" "$ES_DIR/tmp"
  chown -R "$SVC_USER:" "$ES_DIR"
  ln -sfn "$ES_DIR/logs/casestream.log" "$LOG_DIR/elasticsearch.log"
  ES_T0=$SECONDS
  say "es: starting on 127.0.0.1:$ES_PORT (transport $ES_TRANSPORT_PORT)"
  # "-d" returns once the node is up (or has failed), so run it in the
  # background and collect it in es_wait.
  (cd "$ES_DIR" && exec runuser -u "$SVC_USER" -- env HOME="$ES_DIR" \
    ES_JAVA_HOME="$JAVA_HOME17" ES_JAVA_OPTS="-Xms512m -Xmx512m" \
    ES_TMPDIR="$ES_DIR/tmp" "$ES_HOME/bin/elasticsearch" -d -p "$ES_DIR/es.pid") \
    >"$LOG_DIR/elasticsearch-launcher.log" 2>&1 </dev/null &
  ES_LAUNCHER_PID=$!
}

es_wait() {
  local t0=$ES_T0 pid rc logs=("$LOG_DIR/elasticsearch-launcher.log" "$ES_DIR/logs/casestream.log")
  while ((SECONDS - t0 < ES_TIMEOUT)); do
    if [[ -n $ES_LAUNCHER_PID ]] && ! kill -0 "$ES_LAUNCHER_PID" 2>/dev/null; then
      if wait "$ES_LAUNCHER_PID"; then rc=0; else rc=$?; fi
      ES_LAUNCHER_PID=
      ((rc == 0)) || fail_with_logs "es launcher exited with status $rc" "${logs[@]}"
    fi
    if [[ -z $ES_LAUNCHER_PID ]] && ! es_pid >/dev/null; then
      fail_with_logs "es is not running" "${logs[@]}"
    fi
    if curl -fsS -o /dev/null --max-time 10 \
      "http://127.0.0.1:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null; then
      pid=$(es_pid) || {
        sleep 1
        continue
      }
      printf '%s\n' "$pid" >"$RUN_DIR/es.pid"
      say "es ready on 127.0.0.1:$ES_PORT ($((SECONDS - t0))s)"
      return 0
    fi
    sleep 2
  done
  fail_with_logs "es not ready within ${ES_TIMEOUT}s" "${logs[@]}"
}

es_stop() {
  local pid
  if pid=$(es_pid); then
    say "es: stopping pid $pid"
    terminate es "$pid"
  else
    say "es: not running"
  fi
  rm -f "$RUN_DIR/es.pid" "$ES_DIR/es.pid"
}

# Not "GET /": its handler lives in the rest-root module, which the
# integ-test-zip does not ship (GET / answers 405 there).
es_health() {
  curl -fsS --max-time 5 "http://127.0.0.1:$ES_PORT/_nodes/_local?filter_path=nodes.*.version" 2>/dev/null |
    sed -n 's/.*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | grep .
}

# ---------------------------------------------------------------- commands

# kafka names every broker; kafka-i one broker of a cluster.
service_name() {
  case ${1:-} in
  postgres | postgresql | pg) echo postgres ;;
  redis) echo redis ;;
  kafka) echo kafka ;;
  kafka-[0-9]*)
    local i=${1#kafka-}
    [[ $i =~ ^[1-9]$ ]] && ((KAFKA_BROKERS > 1 && i <= KAFKA_BROKERS)) ||
      die "no broker '$1': the stack runs $KAFKA_BROKERS Kafka broker(s) (kafka-1 … kafka-N with up --kafka-brokers N)"
    echo "$1"
    ;;
  es | elasticsearch) echo es ;;
  *) die "unknown service '${1:-}' (expected: ${SERVICES[*]}, or kafka-1 … kafka-N with a cluster)" ;;
  esac
}

# The broker nodes a service name stands for.
kafka_nodes_of() { # service
  if [[ $1 == kafka-* ]]; then echo "${1#kafka-}"; else echo "${KAFKA_NODES[@]}"; fi
}

service_port() {
  case $1 in
  postgres) echo "$PG_PORT" ;;
  redis) echo "$REDIS_PORT" ;;
  kafka*) kafka_port "$(kafka_nodes_of "$1" | cut -d' ' -f1)" ;;
  es) echo "$ES_PORT" ;;
  esac
}

start_one() {
  case $1 in
  postgres) pg_start ;;
  redis) redis_start ;;
  # shellcheck disable=SC2046 # one word per node
  kafka*) kafka_start $(kafka_nodes_of "$1") ;;
  es) es_launch && es_wait ;;
  esac
}

# SIGKILL a process and its children and wait until it is gone.
kill_pid() { # name pid
  local kids
  kids=$(pgrep -P "$2" || true)
  say "$1: SIGKILL pid $2${kids:+ and its children}"
  kill -KILL "$2" $kids 2>/dev/null || true
  while kill -0 "$2" 2>/dev/null; do sleep 0.1; done
}

# Crash a service as a power cut would: SIGKILL, with its children (a
# PostgreSQL backend outliving its postmaster would hold the shared memory).
# kafka kills every broker; kafka-i one.
kill_one() {
  local pid n
  case $1 in
  kafka*)
    for n in $(kafka_nodes_of "$1"); do
      if pid=$(kafka_pid "$n"); then
        kill_pid "$(kafka_name "$n")" "$pid"
      else
        say "$(kafka_name "$n"): not running"
      fi
    done
    return 0
    ;;
  esac
  if ! pid=$("${1/postgres/pg}_pid"); then
    say "$1: not running"
    return 0
  fi
  kill_pid "$1" "$pid"
  [[ $1 != es ]] || rm -f "$RUN_DIR/es.pid" "$ES_DIR/es.pid"
}

stop_one() {
  case $1 in
  postgres) pg_stop ;;
  redis) redis_stop ;;
  # shellcheck disable=SC2046 # one word per node
  kafka*) kafka_stop $(kafka_nodes_of "$1") ;;
  es) es_stop ;;
  esac
}

cmd_up() { # [--kafka-brokers N]
  local t0=$SECONDS want=${CASESTREAM_KAFKA_BROKERS:-1} was
  while (($#)); do
    case $1 in
    --kafka-brokers)
      (($# > 1)) || die_config "--kafka-brokers needs a value"
      want=$2
      shift 2
      ;;
    --kafka-brokers=*)
      want=${1#*=}
      shift
      ;;
    *) die_config "up: unknown option '$1' (expected: --kafka-brokers N)" ;;
    esac
  done
  kafka_count_valid "$want" || die_config "--kafka-brokers (CASESTREAM_KAFKA_BROKERS): '$want' is not a broker count from 1 to 9"
  kafka_layout "$want"
  kafka_check_ports # before anything starts
  prepare
  # A cluster of another size (or the single broker) is stopped; its data stays.
  was=$(kafka_recorded_count)
  if [[ $was != "$want" ]]; then
    kafka_layout "$was"
    say "kafka: switching from $was to $want broker(s)"
    kafka_stop "${KAFKA_NODES[@]}"
  fi
  kafka_layout "$want"
  printf '%s\n' "$want" >"$KAFKA_COUNT_FILE"
  # Slow JVMs first, so they boot while PostgreSQL and Redis start.
  kafka_prepare
  KAFKA_T0=$SECONDS
  for n in "${KAFKA_NODES[@]}"; do kafka_launch "$n"; done
  es_launch
  pg_start
  redis_start
  kafka_wait "${KAFKA_NODES[@]}"
  kafka_internal_topics
  es_wait
  say "all services up ($((SECONDS - t0))s); eval \"\$($0 env)\" to use them"
}

cmd_down() {
  local s
  for s in es kafka redis postgres; do
    stop_one "$s"
  done
}

cmd_status() {
  local s n pid version bad=0
  local -a rows=()
  for s in "${SERVICES[@]}"; do
    if [[ $s == kafka ]]; then
      for n in "${KAFKA_NODES[@]}"; do rows+=("$(kafka_name "$n")"); done
    else
      rows+=("$s")
    fi
  done
  for s in "${rows[@]}"; do
    if [[ $s == kafka* ]]; then
      n=$(kafka_nodes_of "$s")
      pid=$(kafka_pid "$n" 2>/dev/null) || pid=-
      version=$(kafka_health "$n") || version=
    else
      pid=$("${s/postgres/pg}_pid" 2>/dev/null) || pid=-
      version=$("${s/postgres/pg}_health") || version=
    fi
    if [[ -n $version ]]; then
      printf '%-9s pid %-8s port %-6s healthy %s\n' "$s" "$pid" "$(service_port "$s")" "$version"
    else
      printf '%-9s pid %-8s port %-6s down\n' "$s" "$pid" "$(service_port "$s")"
      bad=1
    fi
  done
  return "$bad"
}

cmd_logs() {
  local s n follow=0 files=()
  if [[ ${1:-} == -f ]]; then
    follow=1
    shift
  elif [[ ${2:-} == -f ]]; then
    follow=1
  fi
  local -a want=("${SERVICES[@]}")
  [[ -z ${1:-} ]] || want=("$(service_name "$1")")
  for s in "${want[@]}"; do
    case $s in
    postgres) files+=("$LOG_DIR/postgres.log") ;;
    redis) files+=("$LOG_DIR/redis.log") ;;
    kafka*)
      for n in $(kafka_nodes_of "$s"); do
        files+=("$(kafka_server_log "$n")" "$(kafka_out_log "$n")")
      done
      ;;
    es) files+=("$LOG_DIR/elasticsearch.log" "$LOG_DIR/elasticsearch-launcher.log") ;;
    esac
  done
  if ((follow)); then
    exec tail -n 20 -F "${files[@]}"
  fi
  local f
  for f in "${files[@]}"; do
    [[ -e $f ]] || continue
    printf '==== %s ====\n' "$f"
    tail -n "${CASESTREAM_LOG_LINES:-50}" "$f"
  done
}

cmd_env() {
  printf 'export CASESTREAM_BROKERS=%s\n' "$(kafka_bootstrap)"
  # The schema owner (migrations, tests), and the roles the programs use.
  printf 'export CASESTREAM_PG="host=127.0.0.1 port=%s dbname=casestream user=casestream password=casestream"\n' "$PG_PORT"
  printf 'export CASESTREAM_WORKER_PG="host=127.0.0.1 port=%s dbname=casestream user=casestream_worker password=casestream_worker"\n' "$PG_PORT"
  printf 'export CASESTREAM_READER_PG="host=127.0.0.1 port=%s dbname=casestream user=casestream_reader password=casestream_reader"\n' "$PG_PORT"
  printf 'export CASESTREAM_REDIS=redis://127.0.0.1:%s\n' "$REDIS_PORT"
  printf 'export CASESTREAM_ES=http://127.0.0.1:%s\n' "$ES_PORT"
}

usage() {
  sed -n '/^# Usage:/,/^#$/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-} svc
  shift || true
  # Every command but up works on the brokers the last up started (their
  # ports are checked where they are bound: up, start, restart, crash).
  kafka_layout "$(kafka_recorded_count)"
  case $cmd in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  packages)
    # Only the Debian packages (and Java) that up installs: what `make fuzz` needs
    # on a machine where the stack never ran.
    [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages)"
    install_packages
    ;;
  logs) cmd_logs "$@" ;;
  kill)
    svc=$(service_name "${1:-}")
    [[ $(id -u) -eq 0 ]] || die "must run as root (the services run as user $SVC_USER)"
    kill_one "$svc"
    ;;
  crash)
    svc=$(service_name "${1:-}")
    kafka_check_ports
    prepare
    kill_one "$svc"
    start_one "$svc"
    ;;
  start | stop | restart)
    svc=$(service_name "${1:-}")
    [[ $cmd == stop ]] || kafka_check_ports
    [[ $cmd == stop ]] || prepare
    [[ $cmd == start ]] || stop_one "$svc"
    [[ $cmd == stop ]] || start_one "$svc"
    ;;
  kafka-topics | kafka-configs | kafka-consumer-groups) kafka_tool "$cmd" "$@" ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
