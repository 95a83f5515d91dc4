"""Ids are ULIDs: 26 Crockford base32 characters, sortable by creation time, unique."""

from __future__ import annotations

from chalicelib.ids import CROCKFORD, new_id


def test_an_id_is_26_crockford_characters():
    value = new_id()

    assert len(value) == 26
    assert set(value) <= set(CROCKFORD)


def test_ids_sort_by_their_millisecond():
    earlier, later = new_id(now_ms=1_767_225_600_000), new_id(now_ms=1_767_225_600_001)

    assert earlier < later


def test_the_time_part_encodes_the_millisecond_as_the_ulid_spec_says():
    # The spec's example: 1469918176385 ms is "01ARYZ6S41" in the first ten characters.
    assert new_id(now_ms=1_469_918_176_385)[:10] == "01ARYZ6S41"


def test_ten_thousand_ids_are_distinct():
    assert len({new_id() for _ in range(10_000)}) == 10_000
