#!/usr/bin/env bash
# scripts/stack.sh - run casestream's backing services on loopback, no Docker.
#
#   PostgreSQL 15 and Redis 7   Debian packages, our own instances
#   Apache Kafka 4.1.2 (KRaft)  jars from Maven Central (scripts/kafka/pom.xml)
#   Elasticsearch 8.19.21       Maven Central integ-test-zip, security off
#   librdkafka 2.14.2           built from Debian's source package
#                               (scripts/librdkafka.sh), for the programs
#
# Everything (data, logs, pid files) lives under $CASESTREAM_STACK_DIR,
# default <repo>/.stack. Must run as root on Debian 12; every service runs as
# the unprivileged system user "casestream". PostgreSQL takes passwords
# (SCRAM) over TCP, for the roles casestream (schema owner),
# casestream_worker and casestream_reader; `env` prints their conninfos.
#
# Usage: scripts/stack.sh up|status|down|env|packages
#        scripts/stack.sh logs [service] [-f]
#        scripts/stack.sh start|stop|restart|crash <service>
#        (crash: SIGKILL the service and its children, then start it again)
# Services: postgres (pg), redis, kafka, es (elasticsearch).
#
# Environment (defaults avoid the standard ports; everything binds 127.0.0.1):
#   CASESTREAM_STACK_DIR             <repo>/.stack
#   CASESTREAM_PG_PORT               55432
#   CASESTREAM_REDIS_PORT            56379
#   CASESTREAM_KAFKA_PORT            59092
#   CASESTREAM_KAFKA_CONTROLLER_PORT 59093
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

# librdkafka is not among them: scripts/librdkafka.sh builds a current one.
PACKAGES=(postgresql-15 postgresql-contrib redis-server maven
  libpq-dev libjansson-dev libhiredis-dev libmicrohttpd-dev check libssl-dev
  libcurl4-openssl-dev pkg-config kcat clang-format valgrind unzip curl
  procps clang groff-base openssl wrk)

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
  # The library the programs link against; once per clone and version.
  CASESTREAM_STACK_DIR=$STACK_DIR "$SCRIPT_DIR/librdkafka.sh" build
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

kafka_pid() { live_pid "$RUN_DIR/kafka.pid" kafka.Kafka "$KAFKA_DIR/server.properties"; }

kafka_java() { # main-class args...
  "$JAVA_HOME17/bin/java" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
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

# A broker still running from jars of another version (started by an older
# stack.sh) is stopped, so that this version's starts in its place.
kafka_stop_other_version() {
  local pid
  pid=$(kafka_pid) || return 0
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) != *"$KAFKA_LIBS/"* ]] || return 0
  say "kafka: pid $pid runs another Kafka version than $KAFKA_VERSION: stopping it"
  terminate kafka "$pid"
  rm -f "$RUN_DIR/kafka.pid"
}

kafka_configure() {
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by scripts/stack.sh; edits are overwritten on start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
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
EOF
  cat >"$KAFKA_DIR/log4j2.properties" <<EOF
# Written by scripts/stack.sh (Kafka 4 logs through log4j2).
appender.file.type=File
appender.file.name=file
appender.file.fileName=$LOG_DIR/kafka-server.log
appender.file.append=true
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
logger.request.name=kafka.request.logger
logger.request.level=WARN
logger.clients.name=org.apache.kafka.clients
logger.clients.level=WARN
EOF
  rm -f "$KAFKA_DIR/log4j.properties"
}

# Storage formatted by the Kafka 3.9 of an older stack.sh (no stamp) or by
# another version is formatted anew: it holds test data only, and an
# upgraded 3.9 cluster would keep its 3.9 metadata version, without the
# consumer group protocol, until its features were upgraded by hand.
kafka_format() {
  local id by=
  if [[ -s $KAFKA_DIR/data/meta.properties ]]; then
    [[ -s $KAFKA_FORMATTED ]] && read -r by <"$KAFKA_FORMATTED"
    [[ $by == "$KAFKA_VERSION" ]] && return 0
    say "kafka: $KAFKA_DIR/data was formatted by Kafka ${by:-3.9 (an older stack.sh)}, not $KAFKA_VERSION: deleting its topics (test data only) and formatting it anew"
    rm -rf "$KAFKA_DIR/data"
  fi
  id=$(kafka_java kafka.tools.StorageTool random-uuid | tail -n1)
  [[ -n $id ]] || die "kafka: StorageTool random-uuid printed nothing"
  say "kafka: formatting storage, cluster id $id"
  kafka_java kafka.tools.StorageTool format -t "$id" \
    -c "$KAFKA_DIR/server.properties" >>"$LOG_DIR/kafka.out" 2>&1 ||
    fail_with_logs "kafka: storage format failed" "$LOG_DIR/kafka.out"
  printf '%s\n' "$KAFKA_VERSION" >"$KAFKA_FORMATTED"
}

kafka_launch() {
  local pid
  KAFKA_T0=$SECONDS
  kafka_stop_other_version
  if pid=$(kafka_pid); then
    say "reusing kafka pid $pid"
    return 0
  fi
  require_free_port kafka "$KAFKA_PORT" CASESTREAM_KAFKA_PORT
  require_free_port "kafka controller" "$KAFKA_CTRL_PORT" CASESTREAM_KAFKA_CONTROLLER_PORT
  rm -f "$RUN_DIR/kafka.pid"
  kafka_fetch
  kafka_configure
  kafka_format
  chown -R "$SVC_USER:" "$KAFKA_DIR/data"
  # log4j2 creates the log file as soon as a tool starts: the storage tool
  # (run as root) must not leave it unwritable for the broker.
  touch "$LOG_DIR/kafka-server.log"
  chown "$SVC_USER:" "$LOG_DIR/kafka-server.log"
  KAFKA_T0=$SECONDS
  say "kafka: starting on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CTRL_PORT)"
  # exec chain keeps one pid: subshell -> setpriv -> setsid -> nohup -> java.
  (cd "$KAFKA_DIR" && as_user_exec setsid nohup "$JAVA_HOME17/bin/java" -Xms256m -Xmx512m \
    -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties") \
    >>"$LOG_DIR/kafka.out" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$RUN_DIR/kafka.pid"
}

kafka_wait() {
  local t0=$KAFKA_T0
  while ((SECONDS - t0 < KAFKA_TIMEOUT)); do
    # Right after the launch the pid may not have exec'd java yet, so ask
    # whether it is alive, not whether it is the broker already.
    local launched
    launched=$(cat "$RUN_DIR/kafka.pid" 2>/dev/null) || launched=
    if [[ -z $launched ]] || ! kill -0 "$launched" 2>/dev/null; then
      fail_with_logs "kafka exited during startup" "$LOG_DIR/kafka-server.log" "$LOG_DIR/kafka.out"
    fi
    if port_open "$KAFKA_PORT" && kafka_health >/dev/null; then
      say "kafka ready on 127.0.0.1:$KAFKA_PORT ($((SECONDS - t0))s)"
      return 0
    fi
    sleep 1
  done
  fail_with_logs "kafka not ready within ${KAFKA_TIMEOUT}s" "$LOG_DIR/kafka-server.log" "$LOG_DIR/kafka.out"
}

kafka_stop() {
  local pid
  if pid=$(kafka_pid); then
    say "kafka: stopping pid $pid"
    terminate kafka "$pid"
  else
    say "kafka: not running"
  fi
  rm -f "$RUN_DIR/kafka.pid"
}

kafka_health() {
  local meta jar
  meta=$(timeout 15 kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 5 2>/dev/null) || return 1
  [[ $meta == *"broker 1 at"* ]] || return 1
  jar=$(find "$KAFKA_LIBS" -maxdepth 1 -name 'kafka_2.13-*.jar' 2>/dev/null | head -n1)
  jar=${jar##*/kafka_2.13-}
  printf '%s\n' "${jar%.jar}"
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

service_name() {
  case ${1:-} in
  postgres | postgresql | pg) echo postgres ;;
  redis) echo redis ;;
  kafka) echo kafka ;;
  es | elasticsearch) echo es ;;
  *) die "unknown service '${1:-}' (expected: ${SERVICES[*]})" ;;
  esac
}

service_port() {
  case $1 in
  postgres) echo "$PG_PORT" ;;
  redis) echo "$REDIS_PORT" ;;
  kafka) echo "$KAFKA_PORT" ;;
  es) echo "$ES_PORT" ;;
  esac
}

start_one() {
  case $1 in
  postgres) pg_start ;;
  redis) redis_start ;;
  kafka) kafka_launch && kafka_wait ;;
  es) es_launch && es_wait ;;
  esac
}

# Crash a service as a power cut would: SIGKILL, with its children (a
# PostgreSQL backend outliving its postmaster would hold the shared memory).
crash_one() {
  local pid kids
  if ! pid=$("${1/postgres/pg}_pid"); then
    say "$1: not running"
    return 0
  fi
  kids=$(pgrep -P "$pid" || true)
  say "$1: SIGKILL pid $pid${kids:+ and its children}"
  kill -KILL "$pid" $kids 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  [[ $1 != es ]] || rm -f "$RUN_DIR/es.pid" "$ES_DIR/es.pid"
}

stop_one() {
  case $1 in
  postgres) pg_stop ;;
  redis) redis_stop ;;
  kafka) kafka_stop ;;
  es) es_stop ;;
  esac
}

cmd_up() {
  local t0=$SECONDS
  prepare
  # Slow JVMs first, so they boot while PostgreSQL and Redis start.
  kafka_launch
  es_launch
  pg_start
  redis_start
  kafka_wait
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
  local s pid version bad=0
  for s in "${SERVICES[@]}"; do
    pid=$("${s/postgres/pg}_pid" 2>/dev/null) || pid=-
    if version=$("${s/postgres/pg}_health"); then
      printf '%-9s pid %-8s port %-6s healthy %s\n' "$s" "$pid" "$(service_port "$s")" "$version"
    else
      printf '%-9s pid %-8s port %-6s down\n' "$s" "$pid" "$(service_port "$s")"
      bad=1
    fi
  done
  return "$bad"
}

cmd_logs() {
  local s follow=0 files=()
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
    kafka) files+=("$LOG_DIR/kafka-server.log" "$LOG_DIR/kafka.out") ;;
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
  printf 'export CASESTREAM_BROKERS=127.0.0.1:%s\n' "$KAFKA_PORT"
  # The schema owner (migrations, tests), and the roles the programs use.
  printf 'export CASESTREAM_PG="host=127.0.0.1 port=%s dbname=casestream user=casestream password=casestream"\n' "$PG_PORT"
  printf 'export CASESTREAM_WORKER_PG="host=127.0.0.1 port=%s dbname=casestream user=casestream_worker password=casestream_worker"\n' "$PG_PORT"
  printf 'export CASESTREAM_READER_PG="host=127.0.0.1 port=%s dbname=casestream user=casestream_reader password=casestream_reader"\n' "$PG_PORT"
  printf 'export CASESTREAM_REDIS=redis://127.0.0.1:%s\n' "$REDIS_PORT"
  printf 'export CASESTREAM_ES=http://127.0.0.1:%s\n' "$ES_PORT"
}

usage() {
  sed -n '16,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-} svc
  shift || true
  case $cmd in
  up) cmd_up ;;
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
  crash)
    svc=$(service_name "${1:-}")
    prepare
    crash_one "$svc"
    start_one "$svc"
    ;;
  start | stop | restart)
    svc=$(service_name "${1:-}")
    [[ $cmd == stop ]] || prepare
    [[ $cmd == start ]] || stop_one "$svc"
    [[ $cmd == stop ]] || start_one "$svc"
    ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
