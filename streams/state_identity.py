"""The state stage's side of identity (`identity.py`): link aliases, hold and resolve events that name one.

An event that knows its payment sends a link record for each alias it proves to the alias's partition;
an event naming only an alias is resolved through the alias's entry, or held there until the link
arrives (or, past the release horizon, released under the alias: `held_release.py`). The entries live
in the state table and are written by the same batch as the states (`state_stage.py`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

from schemas.exceptions import DecodeError
from schemas.records import PaymentEvent
from schemas.serde import AvroSerde
from schemas.topics import partition_for
from streams.held_release import is_release, self_link
from streams.identity import ALIAS_PREFIX, RESOLVED, AliasEntry, Identity, link_event, resolved
from streams.metrics import WorkerMetrics
from streams.partitioned import PartitionedTable
from streams.state_batch import StateBatch, StateInput
from streams.state_expiry import to_ms

__all__ = ["AliasResolution"]

log = logging.getLogger("paystream.streams")

_TOUCH_AFTER_MS = 86_400_000
"""An alias entry that resolves events is re-stamped (and rewritten) at most this often."""
_LINK_CACHE = 100_000
"""Links this worker remembers having sent, so a busy payment does not re-send its links per event."""


class AliasResolution:
    """Mixed into `StateStage`, whose batch loop calls these; it owns the attributes declared here."""

    states: PartitionedTable
    metrics: WorkerMetrics
    event_serde: AvroSerde[PaymentEvent]
    partitions: int
    _linked: OrderedDict[tuple[str, str], str]
    _releases_sent: set[tuple[int, bytes]]

    def _links(self, item: StateInput, identity: Identity) -> list[StateInput]:
        """Link records for the aliases this event proves, unless this worker already sent the same link."""
        event = item.event
        out: list[StateInput] = []
        for alias in identity.links:
            if identity.payment is None or self._linked.get((event.provider, alias)) == identity.payment:
                continue
            self._linked[(event.provider, alias)] = identity.payment
            if len(self._linked) > _LINK_CACHE:
                self._linked.popitem(last=False)
            link = link_event(event, alias, identity.payment)
            key = f"{event.provider}:{alias}".encode()
            out.append(StateInput(None, partition_for(key, self.partitions), key, link,
                                  self.event_serde.encode(link), []))
        return out

    def _alias_entry(self, batch: StateBatch, partition: int, key: bytes) -> AliasEntry:
        entry = batch.aliases[partition].get(key)
        if entry is None:
            entry = AliasEntry.unpack(self.states.get(partition, ALIAS_PREFIX + key))
            batch.aliases[partition][key] = entry
        return entry

    def _on_link(self, item: StateInput, batch: StateBatch, queue: deque[StateInput]) -> None:
        """Record which payment this alias belongs to and release the events held for it."""
        payment = item.event.related_ids[RESOLVED]
        entry = self._alias_entry(batch, item.partition, item.key)
        release = is_release(item.event)
        if release:
            self._releases_sent.discard((item.partition, item.key))
        if entry.payment is None:
            entry.payment = payment
            batch.alias_changed[item.partition].add(item.key)
            self.metrics.identity.labels("released" if release else "linked").inc()
            if release:
                log.warning("held events released under their alias: no event named its payment in time",
                            extra={"alias": item.key.decode(), "events": len(entry.held)})
        elif entry.payment != payment:
            if release:
                return  # an event named the payment before the release arrived: nothing to release
            log.warning("alias already linked to another payment; link ignored",
                        extra={"alias": item.key.decode(), "payment": entry.payment, "other": payment})
            self.metrics.identity.labels("conflict").inc()
            return
        else:  # linked before (a replay, or another worker's link): its changelog record may never have arrived
            batch.alias_changed[item.partition].add(item.key)
        entry.touch(to_ms(item.event.received_at))
        for value, headers in entry.held.values():  # again on a replayed link: applied once by event key
            try:
                held = self.event_serde.decode(value)
            except DecodeError as exc:
                batch.failures.append((StateInput(item.message, item.partition, item.key, item.event, value, headers),
                                       exc, "unreadable_held_event"))
                continue
            queue.append(self._resolve(StateInput(item.message, item.partition, item.key, held, value, headers),
                                       entry.payment, batch))

    def _on_unresolved(self, item: StateInput, alias: str, batch: StateBatch, queue: deque[StateInput]) -> None:
        """An event naming only an alias: on to its payment when linked, else held until the link arrives."""
        entry = self._alias_entry(batch, item.partition, item.key)
        received_ms = to_ms(item.event.received_at)
        if entry.payment is not None:
            queue.append(self._resolve(item, entry.payment, batch))
            if entry.touched_ms is None or received_ms - entry.touched_ms > _TOUCH_AFTER_MS:
                entry.touch(received_ms)  # still in use: keep it from expiring (rewritten at most daily)
                batch.alias_changed[item.partition].add(item.key)
            return
        entry.touch(received_ms)
        if entry.hold(item.event.event_key, item.value, item.headers):
            self.metrics.identity.labels("held").inc()
            log.info("event held until its payment is known",
                     extra={"event_key": item.event.event_key, "alias": alias})
        # else: held before, a replay whose entry's changelog record may never have arrived
        batch.alias_changed[item.partition].add(item.key)

    def _resolve(self, item: StateInput, payment: str, batch: StateBatch) -> StateInput:
        """The event re-keyed to its payment; it goes to payments.events.v1 now (it was not emitted before)."""
        event = resolved(item.event, payment)
        key = event.payment_key.encode()
        value = self.event_serde.encode(event)
        resolved_item = StateInput(item.message, partition_for(key, self.partitions), key, event, value,
                                   item.headers)
        batch.events.append(resolved_item)
        self.metrics.identity.labels("resolved").inc()
        return resolved_item

    def _self_link(self, partition: int, key: bytes, entry: AliasEntry) -> StateInput | None:
        link = self_link(entry, key, self.event_serde)
        if link is None:
            return None
        return StateInput(None, partition, key, link, self.event_serde.encode(link), [])
