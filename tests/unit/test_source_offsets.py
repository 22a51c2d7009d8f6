"""SourceOffsets: a source partition's records are applied without jumping over any offset."""

from __future__ import annotations

from streams.source_offsets import OffsetVerdict, SourceOffsets

TAKE, DROP, REWIND = OffsetVerdict.TAKE, OffsetVerdict.DROP, OffsetVerdict.REWIND


def _replay(offsets: SourceOffsets, tp: str, arriving: list[int], committed: int | None):
    """Play arrivals like the worker does: on REWIND seek back (arrivals restart there)."""
    applied: list[int] = []
    queue = list(arriving)
    while queue:
        offset = queue.pop(0)
        verdict = offsets.check(tp, offset, committed=committed)
        if verdict is TAKE:
            applied.append(offset)
        elif verdict is REWIND:
            target = offsets.expected(tp)
            offsets.rewinding(tp, target)
            queue = [n for n in queue if n > offset] + list(range(target, max(arriving) + 1))
    return applied


def test_records_from_the_old_position_are_read_again_from_the_committed_offset():
    offsets = SourceOffsets()
    # committed: next to read is 4; a stale fetch hands over 6..7 (and 8) first
    applied = _replay(offsets, "p", [6, 7, 8], committed=4)
    assert sorted(set(applied)) == [4, 5, 6, 7, 8]
    assert applied[:2] == [4, 5]  # nothing ahead of 4 was applied before 4
    assert offsets.rewinds == 1
    assert offsets.expected("p") == 9


def test_in_order_records_and_redeliveries_are_taken_without_a_rewind():
    offsets = SourceOffsets()
    assert [offsets.check("p", n, committed=10) for n in (10, 11, 12)] == [TAKE] * 3
    assert offsets.check("p", 11, committed=10) is TAKE  # read again: windows skip it
    assert offsets.expected("p") == 13
    assert offsets.check("p", 15, committed=10) is REWIND
    assert offsets.rewinds == 0  # only counted when the caller rewinds


def test_without_a_committed_offset_the_first_record_sets_the_expectation():
    offsets = SourceOffsets()
    assert offsets.check("p", 40, committed=None) is TAKE
    assert offsets.check("p", 42, committed=None) is REWIND


def test_a_gap_left_by_retention_is_accepted_and_partitions_are_independent():
    offsets = SourceOffsets()
    assert offsets.check("p", 0, committed=None) is TAKE
    assert offsets.check("p", 100, committed=None) is REWIND
    offsets.accept_gap("p", 100)  # the broker's earliest offset is 100
    assert offsets.check("p", 101, committed=None) is TAKE
    assert offsets.check("q", 7, committed=7) is TAKE
    assert offsets.expected("p") == 102 and offsets.expected("q") == 8


def test_a_revoked_partition_starts_again_from_its_committed_offset():
    offsets = SourceOffsets()
    for n in range(5):
        offsets.check("p", n, committed=0)
    offsets.rewinding("p", 3)
    offsets.forget("p")
    assert offsets.expected("p") is None
    # another worker went on to 50 meanwhile; the broker says so
    assert offsets.check("p", 50, committed=50) is TAKE
    assert offsets.check("p", 20, committed=50) is TAKE  # below: a redelivery, never dropped
    assert offsets.expected("p") == 51


def test_records_between_a_revocation_and_the_next_seek_are_dropped_not_applied():
    # 2026-11-29: a worker's partitions were revoked while it still held records 1 and 2 of
    # its old fetch; with the expectation forgotten it applied 2 and never read 1 again
    offsets = SourceOffsets()
    assert offsets.check("p", 0, committed=None) is TAKE
    offsets.block("p")
    assert offsets.check("p", 2, committed=None) is DROP
    assert offsets.check("p", 1, committed=None) is DROP
    offsets.start("p", 1)  # assigned to this worker again, sought to the committed offset
    assert _replay(offsets, "p", [2, 3], committed=None) == [1, 2, 3]
    # a partition that never comes back keeps dropping
    offsets.block("q")
    assert offsets.check("q", 0, committed=0) is DROP


def test_a_rewind_whose_offset_never_comes_is_sought_again_until_it_does():
    offsets = SourceOffsets()
    assert offsets.check("p", 19, committed=11) is REWIND
    offsets.rewinding("p", 11, now=0.0)
    # the seek was undone: faust skips 11..29 as read, only 30.. arrive, and are dropped
    assert [offsets.check("p", n, committed=11) for n in (30, 31)] == [DROP, DROP]
    assert offsets.overdue(1.0, after_s=2.0) == []
    assert offsets.overdue(2.0, after_s=2.0) == [("p", 11)]  # the worker seeks again
    applied = [n for n in range(11, 32) if offsets.check("p", n, committed=11) is TAKE]
    assert applied == list(range(11, 32))
    assert offsets.overdue(10.0, after_s=2.0) == []  # done: nothing left to retry
