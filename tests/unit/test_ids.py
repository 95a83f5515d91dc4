"""Ids are ULIDs: 26 Crockford base32 characters, sortable by creation time, unique."""

from __future__ import annotations

from chalicelib import ids
from chalicelib.ids import CROCKFORD, new_id


def test_an_id_is_26_crockford_characters():
    value = new_id()

    assert len(value) == 26
    assert set(value) <= set(CROCKFORD)


def test_ids_sort_in_the_order_they_were_made_even_within_one_millisecond():
    made = [new_id() for _ in range(1_000)]

    assert made == sorted(made)


def test_the_time_part_encodes_the_millisecond_as_the_ulid_spec_says(monkeypatch):
    monkeypatch.setattr(ids, "_last", (0, 0))  # as in a fresh process

    # The spec's example: 1469918176385 ms is "01ARYZ6S41" in the first ten characters.
    assert new_id(now_ms=1_469_918_176_385)[:10] == "01ARYZ6S41"


def test_an_earlier_clock_reading_never_makes_a_smaller_id():
    newest = new_id()

    assert new_id(now_ms=1_469_918_176_385) > newest


def test_ten_thousand_ids_are_distinct():
    assert len({new_id() for _ in range(10_000)}) == 10_000
