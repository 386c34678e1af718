#!/usr/bin/env bash
# kafka-init (docker-compose.yml): create the payments.* topics of schemas/topics.py up front.
#
# Partitions, replication factor 3 and min.insync.replicas 2 on every topic; the state and
# reconciliation topics are compacted (latest value per key). Existing topics are left alone
# but checked: a partition count that differs from PARTITIONS is reported and fails the job,
# because changing it moves keys (docs/scaling.md, "Adding partitions").
# tests/deploy/test_compose.py keeps this list equal to the topic catalog.
set -euo pipefail

BOOTSTRAP="${BOOTSTRAP:?BOOTSTRAP is required}"
PREFIX="${TOPIC_PREFIX:-}"
PARTITIONS="${PARTITIONS:-8}"
RF="${REPLICATION_FACTOR:-3}"
MIN_ISR="${MIN_INSYNC_REPLICAS:-2}"
KT="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

# name|cleanup.policy
TOPICS=(
  "payments.webhooks.raw.v1|delete"
  "payments.events.v1|delete"
  "payments.state.v1|compact"
  "payments.reconciliation.v1|compact"
  "payments.ledger.v1|delete"
  "payments.dlq.v1|delete"
  "payments.state-input.v1|delete"
)

existing="$("$KT" --bootstrap-server "$BOOTSTRAP" --list)"
status=0
for entry in "${TOPICS[@]}"; do
  name="${PREFIX}${entry%%|*}"
  policy="${entry##*|}"
  if grep -qxF "$name" <<<"$existing"; then
    count="$("$KT" --bootstrap-server "$BOOTSTRAP" --describe --topic "$name" | grep -c 'Partition: ' || true)"
    if [[ "$count" != "$PARTITIONS" ]]; then
      echo "kafka-init: $name has $count partitions, PARTITIONS is $PARTITIONS; not changing it" >&2
      status=1
    else
      echo "kafka-init: $name exists ($count partitions)"
    fi
    continue
  fi
  "$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$name" \
    --partitions "$PARTITIONS" --replication-factor "$RF" \
    --config "min.insync.replicas=$MIN_ISR" --config "cleanup.policy=$policy"
  echo "kafka-init: created $name ($PARTITIONS partitions, RF $RF, min ISR $MIN_ISR, $policy)"
done
exit "$status"
