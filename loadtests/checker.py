"""The delivery checker: exact counts of lost, duplicated, re-delivered and out-of-order messages.

Pure bookkeeping (no I/O, no gevent), fed by the chat users of one load-generator process. Terms (DESIGN):
- lost: an acked message the receiver never saw, live or by `sync`, by the end of the grace period;
- duplicated: one (sender, client_message_id) stored under two message ids (a retry that made a second message);
- redelivered: the same message id delivered live again to a receiver (normal at-least-once, counted apart); the
  final `sync` re-reading what already arrived live is the client's own catch-up, not counted;
- out of order: a receiver sees, live, a message id lower than one it already saw in that conversation.

Each sender numbers its messages per conversation (`seq` 1, 2, ...); the sequence number travels in the
`client_message_id`, so a receiver knows exactly which messages it has and has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

COUNTERS = ("sent", "acked", "send_failed", "delivered", "synced", "lost", "duplicated", "redelivered",
            "out_of_order")


class Seen(Enum):
    """What one receipt was, for the caller to report."""

    NEW = "new"                    # first sight of this message
    REDELIVERED = "redelivered"    # this message id was already delivered live to this receiver
    KNOWN = "known"                # already counted: a sync re-read, or a duplicate seen a second way
    DUPLICATED = "duplicated"      # a second message id for a (sender, client_message_id) already seen
    OUT_OF_ORDER = "out_of_order"  # new, but live after a higher id of the same conversation


@dataclass
class _Stream:
    """One sender's messages in one conversation, as one receiver sees them."""

    acked: dict[int, float] = field(default_factory=dict)     # seq -> when it was sent (the caller's clock)
    ids: dict[int, int] = field(default_factory=dict)          # seq -> the first message id stored for it
    seen: set[int] = field(default_factory=set)                # seqs the receiver saw
    seen_ids: set[int] = field(default_factory=set)            # message ids the receiver saw
    extra: set[int] = field(default_factory=set)               # second (third...) ids stored for a seq


@dataclass
class Lost:
    conversation_id: int
    sender_id: int
    seq: int
    sent_at: float


class Checker:
    """Counts for every (conversation, sender) stream of one process; `finish` declares the losses."""

    def __init__(self) -> None:
        self._streams: dict[tuple[int, int], _Stream] = {}
        self._max_live_id: dict[tuple[int, int], int] = {}   # (receiver, conversation) -> highest live id
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._finished: set[tuple[int, int]] = set()

    def _stream(self, conversation_id: int, sender_id: int) -> _Stream:
        key = (conversation_id, sender_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        return stream

    def sent(self) -> None:
        self.counts["sent"] += 1

    def send_failed(self) -> None:
        self.counts["send_failed"] += 1

    def acked(self, conversation_id: int, sender_id: int, seq: int, message_id: int, sent_at: float) -> Seen:
        """A send was acknowledged (stored). A second id for the same seq is a duplicate."""
        stream = self._stream(conversation_id, sender_id)
        repeat = seq in stream.acked     # a retry's ack: the service must return the message stored the first time
        if not repeat:
            stream.acked[seq] = sent_at
            self.counts["acked"] += 1
        first = stream.ids.setdefault(seq, message_id)
        if first != message_id:          # another id for this seq (seen by an ack or by the receiver)
            return self._extra(stream, message_id)
        return Seen.REDELIVERED if repeat else Seen.NEW

    def _extra(self, stream: _Stream, message_id: int) -> Seen:
        """A second stored id for one seq: one duplicate, however many times and ways it is seen."""
        if message_id in stream.extra:
            return Seen.KNOWN
        stream.extra.add(message_id)
        self.counts["duplicated"] += 1
        return Seen.DUPLICATED

    def received(self, receiver_id: int, conversation_id: int, sender_id: int, seq: int, message_id: int,
                 *, live: bool) -> Seen:
        """A receiver saw a message, live (`message:new`) or through `sync`."""
        stream = self._stream(conversation_id, sender_id)
        if message_id in stream.seen_ids:
            if not live:
                return Seen.KNOWN
            self.counts["redelivered"] += 1
            return Seen.REDELIVERED
        stream.seen_ids.add(message_id)
        first = stream.ids.setdefault(seq, message_id)
        if first != message_id:
            return self._extra(stream, message_id)
        stream.seen.add(seq)
        self.counts["delivered"] += 1
        if not live:
            self.counts["synced"] += 1
            return Seen.NEW
        key = (receiver_id, conversation_id)
        highest = self._max_live_id.get(key, 0)
        if message_id < highest:
            self.counts["out_of_order"] += 1
            return Seen.OUT_OF_ORDER
        self._max_live_id[key] = message_id
        return Seen.NEW

    def finish(self, conversation_id: int, sender_id: int) -> list[Lost]:
        """Declare the stream's acked-but-unseen messages lost (call after the grace period and the final sync).
        A stream is finished once; later calls return nothing."""
        key = (conversation_id, sender_id)
        if key in self._finished:
            return []
        self._finished.add(key)
        stream = self._streams.get(key)
        if stream is None:
            return []
        lost = [Lost(conversation_id, sender_id, seq, at) for seq, at in sorted(stream.acked.items())
                if seq not in stream.seen]
        self.counts["lost"] += len(lost)
        return lost

    def pending(self, conversation_id: int, sender_id: int) -> int:
        """Acked messages of a stream not seen yet."""
        stream = self._streams.get((conversation_id, sender_id))
        return 0 if stream is None else sum(1 for seq in stream.acked if seq not in stream.seen)

    def totals(self) -> dict[str, int]:
        return dict(self.counts)


def merge(totals: list[dict[str, int]]) -> dict[str, int]:
    """Sum per-process totals (as sent by each worker) into one checker.json object."""
    out = dict.fromkeys(COUNTERS, 0)
    for part in totals:
        for key in COUNTERS:
            out[key] += int(part.get(key, 0))
    return out
