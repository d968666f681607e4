#!/usr/bin/env bash
# A local single-node Apache Kafka broker (KRaft: broker + controller in one
# JVM, no ZooKeeper) for development, demos and the integration tests.
#
#   deploy/kafka/broker.sh fetch          download the Kafka jars through Maven (once)
#   deploy/kafka/broker.sh start          format the log dir if new, start, wait until ready
#   deploy/kafka/broker.sh stop           SIGTERM, then SIGKILL after a timeout
#   deploy/kafka/broker.sh status         exit 0 if running and answering, else 1
#   deploy/kafka/broker.sh logs [-f] [N]  last N lines of the broker log (default 100)
#   deploy/kafka/broker.sh clean          stop-checked: delete this broker's data and logs
#
# Environment (all optional):
#   RISKFLOW_KAFKA_VERSION          Kafka version to fetch/run (default 3.9.1)
#   RISKFLOW_KAFKA_HOME             folder holding libs/ (default <repo>/.cache/kafka/<version>)
#   RISKFLOW_KAFKA_PORT             client port on 127.0.0.1 (default 9092)
#   RISKFLOW_KAFKA_CONTROLLER_PORT  KRaft controller port (default client port + 1, i.e. 9093)
#   RISKFLOW_KAFKA_RUNTIME          data/log/pid folder (default deploy/kafka/.runtime/<port>)
#   RISKFLOW_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   RISKFLOW_KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS   as in the Apache scripts
#
# One runtime folder per client port, so brokers on different ports (e.g. one
# per agent or CI job) never share a pid file or a log dir.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=${RISKFLOW_KAFKA_VERSION:-3.9.1}
KAFKA_HOME=${RISKFLOW_KAFKA_HOME:-$ROOT/.cache/kafka/$VERSION}
LIBS=$KAFKA_HOME/libs
PORT=${RISKFLOW_KAFKA_PORT:-9092}
CONTROLLER_PORT=${RISKFLOW_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
RUNTIME=${RISKFLOW_KAFKA_RUNTIME:-$HERE/.runtime/$PORT}
DATA=$RUNTIME/data
LOGS=$RUNTIME/logs
PIDFILE=$RUNTIME/broker.pid
PROPS=$RUNTIME/server.properties
START_TIMEOUT=${RISKFLOW_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${RISKFLOW_KAFKA_STOP_TIMEOUT:-30}
# A 2-core dev box shared with the stream processor: a small heap is plenty for
# a single-node broker holding test and demo topics.
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
JVM_OPTS=${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}

die() { echo "broker.sh: error: $*" >&2; exit 1; }
say() { echo "broker.sh: $*"; }

check_port() {
  case "$1" in
    '' | *[!0-9]*) die "$2 must be a port number, got '$1'" ;;
  esac
  ((1 <= $1 && $1 <= 65535)) || die "$2 must be in 1..65535, got '$1'"
}
check_port "$PORT" RISKFLOW_KAFKA_PORT
check_port "$CONTROLLER_PORT" RISKFLOW_KAFKA_CONTROLLER_PORT
[[ $PORT != "$CONTROLLER_PORT" ]] || die "client and controller ports are both $PORT; set RISKFLOW_KAFKA_CONTROLLER_PORT"

python_bin() {
  if [[ -x $ROOT/.venv/bin/python ]]; then echo "$ROOT/.venv/bin/python"
  elif command -v python3 >/dev/null; then command -v python3
  else die "python3 is needed for the readiness check; install it"
  fi
}

need_java() {
  command -v java >/dev/null || die "java not found on PATH. Install a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless)."
  local version major
  version=$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)
  major=${version%%.*}
  [[ $major == 1 ]] && major=$(echo "$version" | cut -d. -f2)  # 1.8 -> 8
  if [[ $major =~ ^[0-9]+$ ]] && ((major < 11)); then
    die "java $version is too old: Kafka $VERSION's broker needs Java 11+ (17 recommended)."
  fi
}

fetched() { [[ -f $LIBS/.complete && -f $LIBS/kafka_2.13-$VERSION.jar ]]; }

cmd_fetch() {
  if fetched; then
    say "Kafka $VERSION jars already in $LIBS ($(ls "$LIBS" | grep -c '\.jar$') jars)"
    return 0
  fi
  need_java
  command -v mvn >/dev/null || die "mvn not found on PATH, and the Kafka jars are not in $LIBS yet. Install Maven 3.6+ (e.g. apt-get install maven) or point RISKFLOW_KAFKA_HOME at a folder whose libs/ holds the Kafka $VERSION jars."
  mkdir -p "$KAFKA_HOME"
  local partial=$KAFKA_HOME/libs.partial.$$ t0=$SECONDS
  rm -rf "$partial"
  say "fetching Apache Kafka $VERSION from Maven Central into $LIBS ..."
  local log=$KAFKA_HOME/fetch.log
  if ! mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" -Dkafka.version="$VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$partial" >"$log" 2>&1; then
    rm -rf "$partial"
    tail -n 30 "$log" >&2
    die "Maven could not fetch org.apache.kafka:kafka_2.13:$VERSION (offline? wrong RISKFLOW_KAFKA_VERSION?); full output in $log"
  fi
  [[ -f $partial/kafka_2.13-$VERSION.jar ]] || { rm -rf "$partial"; die "Maven ran but kafka_2.13-$VERSION.jar is missing from its output"; }
  touch "$partial/.complete"
  # Another fetch may have finished first; then keep its copy.
  if ! mv -T "$partial" "$LIBS" 2>/dev/null; then
    rm -rf "$partial"
    fetched || die "could not move the fetched jars into $LIBS"
  fi
  say "fetched $(ls "$LIBS" | grep -c '\.jar$') jars in $((SECONDS - t0)) s"
}

# The pid of our broker if it is alive, else nothing. A pid file whose process
# is gone, or whose pid now belongs to some other program, is stale.
live_pid() {
  [[ -f $PIDFILE ]] || return 0
  local pid args
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  args=$(ps -o args= -p "$pid" 2>/dev/null || true)
  if [[ $args == *kafka.Kafka* && $args == *"$PROPS"* ]]; then echo "$pid"; fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

answers() { "$(python_bin)" "$HERE/ready.py" 127.0.0.1 "$PORT" "${1:-0}" >/dev/null 2>&1; }

write_properties() {
  cat >"$PROPS" <<EOF
# Generated by deploy/kafka/broker.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://localhost:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

# Single node: every internal topic has exactly one replica. Transactions
# (exactly-once processing) need the transaction log settings below.
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# 50 partitions (the default) for the internal topics make the first consumer
# group / first transaction wait seconds on a 2-core box; 8 is plenty locally.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
# Tests and demos join groups constantly; do not wait 3 s for more members.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true

# Sized for a 2-core machine shared with the stream processor.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=268435456
EOF
}

cluster_id() {
  # Reuse the id of an already formatted log dir; otherwise make a new one
  # (a Kafka Uuid: 16 random bytes, base64url without padding). Like Kafka's
  # Uuid.randomUuid, never one starting with '-': 1 in 64 would, and the
  # storage tool's argument parser then reads `-t -xyz...` as a missing value.
  if [[ -f $DATA/meta.properties ]]; then
    sed -n 's/^cluster.id=//p' "$DATA/meta.properties"
  else
    "$(python_bin)" "$HERE/cluster_id.py"
  fi
}

java_cmd() {
  # The *_OPTS are word lists, as in the Apache kafka-run-class.sh.
  local -a heap jvm extra
  read -r -a heap <<<"$HEAP_OPTS"
  read -r -a jvm <<<"$JVM_OPTS"
  read -r -a extra <<<"${KAFKA_OPTS:-}"
  JAVA=(java "${heap[@]}" "${jvm[@]}" "${extra[@]}"
    "-Dlog4j.configuration=file:$HERE/log4j.properties" "-Dkafka.logs.dir=$LOGS" -cp "$LIBS/*")
}

cmd_start() {
  need_java
  local pid
  pid=$(live_pid)
  if [[ -n $pid ]]; then
    say "already running (pid $pid) at localhost:$PORT; log: $LOGS/server.log"
    answers 30 || die "pid $pid is running but not answering on localhost:$PORT within 30 s; see $LOGS/server.log (or: $0 stop && $0 start)"
    return 0
  fi
  [[ -f $PIDFILE ]] && { say "removing stale pid file $PIDFILE"; rm -f "$PIDFILE"; }
  fetched || cmd_fetch
  port_busy "$PORT" && die "port $PORT is already in use by a process this script did not start (another broker?). Use it as is, stop it, or pick another port with RISKFLOW_KAFKA_PORT."
  port_busy "$CONTROLLER_PORT" && die "controller port $CONTROLLER_PORT is already in use; set RISKFLOW_KAFKA_CONTROLLER_PORT to a free port."

  mkdir -p "$DATA" "$LOGS"
  write_properties
  local t0 cid
  t0=$(date +%s.%N)
  if [[ ! -f $DATA/meta.properties ]]; then
    cid=$(cluster_id)
    say "formatting new KRaft log dir $DATA (cluster id $cid)"
    java_cmd
    "${JAVA[@]}" kafka.tools.StorageTool format -t "$cid" -c "$PROPS" --ignore-formatted \
      >"$LOGS/format.log" 2>&1 || { cat "$LOGS/format.log" >&2; die "formatting $DATA failed (output above, also in $LOGS/format.log)"; }
  fi

  # setsid: the broker gets its own session, so it outlives the shell (or CI
  # step) that started it and is only stopped by `broker.sh stop`.
  java_cmd
  setsid "${JAVA[@]}" kafka.Kafka "$PROPS" >>"$LOGS/kafka.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "starting Kafka $VERSION (pid $pid) on localhost:$PORT, controller 127.0.0.1:$CONTROLLER_PORT"
  say "broker log: $LOGS/server.log"

  local deadline=$((SECONDS + START_TIMEOUT))
  until answers 1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      tail -n 30 "$LOGS/server.log" "$LOGS/kafka.out" >&2 2>/dev/null || true
      die "the broker exited during start-up; see $LOGS/server.log and $LOGS/kafka.out (last lines above)"
    fi
    if ((SECONDS >= deadline)); then
      die "the broker (pid $pid, still running) did not answer on localhost:$PORT within $START_TIMEOUT s; see $LOGS/server.log. Stop it with: $0 stop"
    fi
    sleep 0.3
  done
  say "ready at localhost:$PORT in $(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $t0}") s"
}

cmd_stop() {
  local pid
  pid=$(live_pid)
  if [[ -z $pid ]]; then
    [[ -f $PIDFILE ]] && rm -f "$PIDFILE"
    say "not running (localhost:$PORT)"
    return 0
  fi
  say "stopping broker pid $pid (SIGTERM, up to $STOP_TIMEOUT s)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "still alive after $STOP_TIMEOUT s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  say "stopped"
}

cmd_status() {
  local pid
  pid=$(live_pid)
  if [[ -z $pid ]]; then
    say "not running (localhost:$PORT)"
    return 1
  fi
  if answers 0; then
    say "running (pid $pid) and answering at localhost:$PORT; log: $LOGS/server.log"
    return 0
  fi
  say "running (pid $pid) but not answering at localhost:$PORT yet; log: $LOGS/server.log"
  return 1
}

cmd_logs() {
  local follow="" lines=100
  for arg in "$@"; do
    case $arg in
      -f | --follow) follow=1 ;;
      *[!0-9]* | '') die "usage: $0 logs [-f] [LINES]" ;;
      *) lines=$arg ;;
    esac
  done
  [[ -f $LOGS/server.log ]] || die "no broker log yet at $LOGS/server.log (start the broker first)"
  echo "==> $LOGS/server.log <==" >&2
  if [[ -n $follow ]]; then exec tail -n "$lines" -F "$LOGS/server.log"; fi
  tail -n "$lines" "$LOGS/server.log"
}

cmd_clean() {
  [[ -z $(live_pid) ]] || die "the broker on port $PORT is running; stop it first"
  rm -rf "$RUNTIME"
  say "removed $RUNTIME"
}

case ${1:-} in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  clean) cmd_clean ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
