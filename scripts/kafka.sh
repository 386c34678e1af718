#!/usr/bin/env bash
# Apache Kafka for tests and local runs, without Docker: fetch the jars once with Maven, then
# format KRaft storage and start a node. Independent of the paystream package.
#
#   scripts/kafka.sh fetch                 # prints the libs dir (cached under .cache/kafka/<version>/libs)
#   scripts/kafka.sh format PROPS CLUSTER_ID [--standalone | --initial-controllers …]
#   scripts/kafka.sh start PROPS           # runs the node in the foreground (exec java)
#
# KAFKA_VERSION (default below) picks the release; KAFKA_CACHE_DIR the cache root;
# KAFKA_HEAP_OPTS the JVM heap (default -Xmx384m -Xms64m: two shared cores and small tests).
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KAFKA_CACHE_DIR:-$ROOT/.cache/kafka}/$KAFKA_VERSION
LIBS=$CACHE/libs
work=""

say() { echo "kafka.sh: $*" >&2; }

fetch() {
  if [ -f "$LIBS/.complete" ]; then echo "$LIBS"; return 0; fi
  command -v mvn >/dev/null 2>&1 || { say "needs Maven (apt-get install maven) and a JDK 17+"; exit 1; }
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.fetch.lock"
  flock 9  # parallel test workers: one fetches, the others wait and reuse it
  if [ -f "$LIBS/.complete" ]; then echo "$LIBS"; return 0; fi
  work=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # A throwaway pom whose only dependencies are the broker (copy-dependencies brings its runtime
  # closure) and the slf4j 1.x binding to the log4j2 core the broker already ships.
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.paystream</groupId><artifactId>kafka-libs</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
EOF
  say "fetching Apache Kafka $KAFKA_VERSION jars with Maven into $LIBS (once)"
  mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$work/libs" >&2
  rm -rf "$LIBS"
  mv "$work/libs" "$LIBS"
  touch "$LIBS/.complete"
  exec 9>&-
  echo "$LIBS"
}

log_config() {
  local file=$CACHE/log4j2.properties
  [ -f "$file" ] || cat >"$file" <<'EOF'
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
EOF
  echo "$file"
}

java_cmd() {  # java with a small heap and a fast-starting JIT (unless KAFKA_JVM_OPTS says otherwise), then the arguments
  # shellcheck disable=SC2206  # the options strings are split into words on purpose
  local heap=(${KAFKA_HEAP_OPTS:--Xmx384m -Xms64m}) jvm=(${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}) libs
  libs=$(fetch)
  exec java "${heap[@]}" "${jvm[@]}" -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$(log_config)" -cp "$libs/*" "$@"
}

case "${1:-}" in
  fetch) fetch ;;
  format)
    props=${2:?properties file}; cluster_id=${3:?cluster id}; shift 3
    java_cmd kafka.tools.StorageTool format --ignore-formatted --config "$props" --cluster-id="$cluster_id" "$@" ;;
  start)
    java_cmd kafka.Kafka "${2:?properties file}" ;;
  *) echo "usage: $0 fetch | format PROPS CLUSTER_ID [--standalone] | start PROPS" >&2; exit 2 ;;
esac
