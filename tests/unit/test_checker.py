"""The delivery checker on synthetic streams with known gaps, duplicates and reorders: exact counts."""

from __future__ import annotations

from loadtests.checker import Checker, Seen, merge

CONV, SENDER, RECEIVER = 7, 100, 200


def _send_and_ack(checker: Checker, seqs: range, first_id: int = 1000) -> dict[int, int]:
    ids = {}
    for seq in seqs:
        checker.sent()
        ids[seq] = first_id + seq
        assert checker.acked(CONV, SENDER, seq, ids[seq], sent_at=float(seq)) is Seen.NEW
    return ids


def test_a_clean_stream_counts_only_deliveries() -> None:
    checker = Checker()
    ids = _send_and_ack(checker, range(1, 51))
    for seq, mid in ids.items():
        assert checker.received(RECEIVER, CONV, SENDER, seq, mid, live=True) is Seen.NEW
    assert checker.finish(CONV, SENDER) == []
    assert checker.totals() == {"sent": 50, "acked": 50, "send_failed": 0, "delivered": 50, "synced": 0,
                                "lost": 0, "duplicated": 0, "redelivered": 0, "out_of_order": 0}


def test_gaps_are_lost_unless_sync_fills_them() -> None:
    checker = Checker()
    ids = _send_and_ack(checker, range(1, 21))
    gaps = {5, 6, 13, 20}
    for seq, mid in ids.items():
        if seq not in gaps:
            checker.received(RECEIVER, CONV, SENDER, seq, mid, live=True)
    assert checker.pending(CONV, SENDER) == 4
    # the final sync brings back two of the four
    checker.received(RECEIVER, CONV, SENDER, 6, ids[6], live=False)
    checker.received(RECEIVER, CONV, SENDER, 13, ids[13], live=False)
    lost = checker.finish(CONV, SENDER)
    assert [x.seq for x in lost] == [5, 20]
    assert lost[0].sent_at == 5.0
    t = checker.totals()
    assert (t["lost"], t["delivered"], t["synced"]) == (2, 18, 2)
    assert checker.finish(CONV, SENDER) == []   # declared once
    assert checker.totals()["lost"] == 2


def test_an_unacked_message_is_a_failed_send_not_a_loss() -> None:
    checker = Checker()
    _send_and_ack(checker, range(1, 4))
    checker.sent()
    checker.send_failed()
    for seq in range(1, 4):
        checker.received(RECEIVER, CONV, SENDER, seq, 1000 + seq, live=True)
    assert checker.finish(CONV, SENDER) == []
    assert checker.totals()["send_failed"] == 1


def test_redelivery_of_one_id_is_not_a_duplicate() -> None:
    checker = Checker()
    ids = _send_and_ack(checker, range(1, 6))
    for seq, mid in ids.items():
        checker.received(RECEIVER, CONV, SENDER, seq, mid, live=True)
    assert checker.received(RECEIVER, CONV, SENDER, 3, ids[3], live=True) is Seen.REDELIVERED
    assert checker.received(RECEIVER, CONV, SENDER, 3, ids[3], live=True) is Seen.REDELIVERED
    # the final sync re-reading what came live is the client's catch-up, not a re-delivery
    assert checker.received(RECEIVER, CONV, SENDER, 4, ids[4], live=False) is Seen.KNOWN
    t = checker.totals()
    assert (t["redelivered"], t["duplicated"], t["delivered"]) == (2, 0, 5)


def test_a_second_id_for_one_client_message_id_is_a_duplicate() -> None:
    checker = Checker()
    ids = _send_and_ack(checker, range(1, 6))
    for seq, mid in ids.items():
        checker.received(RECEIVER, CONV, SENDER, seq, mid, live=True)
    # a retry of seq 2 that the service stored again, under a new id
    assert checker.received(RECEIVER, CONV, SENDER, 2, 9999, live=True) is Seen.DUPLICATED
    # the retry's ack carries that second id too: the same duplicate, counted once
    assert checker.acked(CONV, SENDER, 2, 9999, sent_at=2.0) is Seen.KNOWN
    # a replay's ack of the first id is no duplicate
    assert checker.acked(CONV, SENDER, 2, ids[2], sent_at=2.0) is Seen.REDELIVERED
    # a third stored id is a second duplicate, whichever way it shows up first
    assert checker.acked(CONV, SENDER, 2, 7777, sent_at=2.0) is Seen.DUPLICATED
    assert checker.received(RECEIVER, CONV, SENDER, 2, 7777, live=True) is Seen.KNOWN
    t = checker.totals()
    assert (t["duplicated"], t["acked"], t["delivered"]) == (2, 5, 5)


def test_a_duplicate_seen_before_the_ack() -> None:
    checker = Checker()
    checker.received(RECEIVER, CONV, SENDER, 1, 501, live=True)
    assert checker.acked(CONV, SENDER, 1, 502, sent_at=0.0) is Seen.DUPLICATED
    assert checker.totals()["duplicated"] == 1


def test_live_reorders_are_counted_per_conversation_and_receiver() -> None:
    checker = Checker()
    ids = _send_and_ack(checker, range(1, 11))
    order = [1, 2, 4, 3, 5, 6, 9, 7, 8, 10]   # 3 after 4; 7 and 8 after 9
    results = [checker.received(RECEIVER, CONV, SENDER, seq, ids[seq], live=True) for seq in order]
    assert results.count(Seen.OUT_OF_ORDER) == 3
    # another conversation of the same receiver has its own order
    assert checker.received(RECEIVER, CONV + 1, SENDER, 1, 1, live=True) is Seen.NEW
    # a message first seen by sync is never out of order
    checker.acked(CONV, SENDER, 11, 1011, sent_at=0.0)
    assert checker.received(RECEIVER, CONV, SENDER, 11, 1011, live=False) is Seen.NEW
    t = checker.totals()
    assert (t["out_of_order"], t["delivered"], t["lost"]) == (3, 12, 0)


def test_merge_sums_workers() -> None:
    a, b = Checker(), Checker()
    _send_and_ack(a, range(1, 4))
    _send_and_ack(b, range(1, 3))
    a.finish(CONV, SENDER)
    b.finish(CONV, SENDER)
    total = merge([a.totals(), b.totals(), {}])
    assert (total["acked"], total["lost"], total["delivered"]) == (5, 5, 0)
