"""The client's reorder buffer: messages come out once each and in `seq` order, gaps wait about a
second and then ask for a sync, and acks never cover a gap (PROTOCOL "Keeping order")."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ephemera_client.inbox import GAP_HOLD_S, Inbox

CONV = "c1"


def message(seq: int, conversation_id: str = CONV, message_id: str | None = None) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "message_id": message_id or f"{conversation_id}-m{seq}",
        "seq": seq,
        "sender_id": "u2",
        "sender_device_id": "d2",
        "client_msg_id": f"client-{seq}",
        "body": f"body {seq}",
        "created_at": 1_700_000_000_000 + seq,
        "expires_at": 1_700_086_400_000 + seq,
    }


def seqs(released: list[dict[str, Any]]) -> list[int]:
    return [released_message["seq"] for released_message in released]


def test_messages_in_order_are_released_at_once():
    inbox = Inbox()

    assert seqs(inbox.receive(message(1), now=0.0)) == [1]
    assert seqs(inbox.receive(message(2), now=0.1)) == [2]
    assert inbox.cursor(CONV) == 2
    assert inbox.stats.reordered == 0


def test_a_message_after_a_gap_waits_for_the_missing_one():
    inbox = Inbox()
    inbox.receive(message(1), now=0.0)

    assert inbox.receive(message(3), now=0.1) == []
    assert inbox.held(CONV) == 1
    assert inbox.cursor(CONV) == 1
    assert seqs(inbox.receive(message(2), now=0.2)) == [2, 3]
    assert inbox.held(CONV) == 0
    assert inbox.stats.reordered == 1


def test_a_duplicate_delivery_is_released_once():
    inbox = Inbox()
    inbox.receive(message(1), now=0.0)
    inbox.receive(message(3), now=0.0)

    assert inbox.receive(message(3), now=0.1) == []  # already held
    assert seqs(inbox.receive(message(2), now=0.2)) == [2, 3]
    assert inbox.receive(message(2), now=0.3) == []  # already released
    assert inbox.stats.duplicates == 2


def test_a_message_id_seen_before_is_a_duplicate_whatever_its_seq():
    inbox = Inbox()
    inbox.receive(message(1, message_id="same"), now=0.0)

    assert inbox.receive(message(5, message_id="same"), now=0.1) == []
    assert inbox.held(CONV) == 0
    assert inbox.stats.duplicates == 1


def test_remembered_message_ids_are_bounded_to_the_most_recent():
    inbox = Inbox(remembered_ids=2)
    for seq in (1, 2, 3):
        inbox.receive(message(seq), now=0.0)

    assert inbox.receive(message(4, message_id=f"{CONV}-m1"), now=0.1) != []  # forgotten
    assert inbox.receive(message(5, message_id=f"{CONV}-m3"), now=0.1) == []  # remembered


def test_seq_one_of_an_unknown_conversation_starts_it():
    inbox = Inbox()
    assert not inbox.knows(CONV)
    assert inbox.cursor(CONV) is None

    assert seqs(inbox.receive(message(1), now=0.0)) == [1]
    assert inbox.knows(CONV)
    assert inbox.cursor(CONV) == 1


def test_a_message_of_an_unknown_conversation_other_than_seq_one_waits_for_sync():
    inbox = Inbox()

    assert inbox.receive(message(5), now=10.0) == []
    assert inbox.held(CONV) == 1
    assert inbox.gaps_due(10.0 + GAP_HOLD_S) == [CONV]
    # The member joined at seq 5: the sync says nothing before it can be had.
    released = inbox.synced(CONV, messages=[message(5)], first_seq=5, last_seq=5, has_more=False)
    assert seqs(released) == [5]
    assert inbox.cursor(CONV) == 5
    assert inbox.stats.duplicates == 1  # the sync's copy of the held message


def test_start_at_moves_the_cursor_and_releases_what_became_contiguous():
    inbox = Inbox()
    inbox.receive(message(5), now=0.0)
    inbox.receive(message(7), now=0.0)

    assert seqs(inbox.start_at(CONV, 4)) == [5]
    assert inbox.cursor(CONV) == 5
    assert inbox.held(CONV) == 1


def test_start_at_never_moves_a_cursor_back():
    inbox = Inbox()
    inbox.start_at(CONV, 10)

    assert inbox.start_at(CONV, 3) == []
    assert inbox.cursor(CONV) == 10
    assert inbox.receive(message(9), now=0.0) == []


def test_an_expired_range_closes_a_gap():
    inbox = Inbox()
    inbox.start_at(CONV, 1)
    inbox.receive(message(5), now=0.0)

    assert seqs(inbox.expired(CONV, [[2, 4]], None)) == [5]
    assert inbox.cursor(CONV) == 5
    assert inbox.next_deadline() is None


def test_an_expired_held_message_is_never_released():
    inbox = Inbox()
    inbox.start_at(CONV, 1)
    inbox.receive(message(3), now=0.0)
    inbox.receive(message(4), now=0.0)

    assert inbox.expired(CONV, [[3, 3]], None) == []
    assert inbox.held(CONV) == 1
    assert seqs(inbox.receive(message(2), now=0.1)) == [2, 4]
    assert inbox.receive(message(3), now=0.2) == []  # a late push of what was deleted


def test_a_late_push_of_a_seq_that_expired_above_a_gap_is_dropped():
    inbox = Inbox()
    inbox.start_at(CONV, 1)
    inbox.expired(CONV, [[3, 3]], None)

    assert inbox.receive(message(3), now=0.0) == []
    assert inbox.held(CONV) == 0
    assert inbox.stats.duplicates == 1
    assert seqs(inbox.receive(message(2), now=0.1)) == [2]
    assert inbox.cursor(CONV) == 3


def test_expired_up_to_seq_passes_every_seq_below_it():
    inbox = Inbox()
    inbox.receive(message(3), now=0.0)
    inbox.receive(message(6), now=0.0)

    assert seqs(inbox.expired(CONV, [], 5)) == [6]
    assert inbox.cursor(CONV) == 6


def test_expired_for_an_unknown_conversation_changes_nothing():
    inbox = Inbox()

    assert inbox.expired(CONV, [[1, 3]], 3) == []
    assert not inbox.knows(CONV)


def test_gone_seqs_are_forgotten_as_the_cursor_passes_them():
    inbox = Inbox()
    inbox.start_at(CONV, 1)
    inbox.expired(CONV, [[10, 12], [20, 22]], None)

    inbox.expired(CONV, [], 11)

    assert inbox.cursor(CONV) == 12
    assert inbox._conversations[CONV].gone == {20, 21, 22}
    inbox.start_at(CONV, 19)
    assert inbox.cursor(CONV) == 22
    assert inbox._conversations[CONV].gone == set()


def test_sync_first_seq_skips_what_expired_before_it():
    inbox = Inbox()
    inbox.start_at(CONV, 2)

    released = inbox.synced(CONV, messages=[message(8), message(9)], first_seq=8, last_seq=9,
                            has_more=False)

    assert seqs(released) == [8, 9]
    assert inbox.cursor(CONV) == 9


def test_sync_first_seq_moves_the_cursor_even_when_a_page_returns_nothing():
    inbox = Inbox()
    inbox.start_at(CONV, 2)
    inbox.receive(message(4), now=0.0)  # expired before the sync was answered

    assert inbox.synced(CONV, messages=[], first_seq=8, last_seq=9, has_more=True) == []
    assert inbox.cursor(CONV) == 7
    assert inbox.held(CONV) == 0


def test_sync_without_more_reaches_last_seq_even_when_the_newest_expired():
    inbox = Inbox()
    inbox.start_at(CONV, 2)

    released = inbox.synced(CONV, messages=[message(4)], first_seq=3, last_seq=7,
                            has_more=False)

    assert seqs(released) == [4]
    assert inbox.cursor(CONV) == 7
    assert inbox.acks_due() == {CONV: 7}


def test_sync_with_more_moves_the_cursor_only_to_the_last_returned_message():
    inbox = Inbox()
    inbox.start_at(CONV, 2)

    released = inbox.synced(CONV, messages=[message(3), message(5)], first_seq=3, last_seq=50,
                            has_more=True)

    assert seqs(released) == [3, 5]
    assert inbox.cursor(CONV) == 5


def test_a_held_message_the_sync_no_longer_returns_was_deleted():
    inbox = Inbox()
    inbox.start_at(CONV, 1)
    inbox.receive(message(3), now=0.0)

    released = inbox.synced(CONV, messages=[message(2)], first_seq=2, last_seq=3,
                            has_more=False)

    assert seqs(released) == [2]
    assert inbox.cursor(CONV) == 3
    assert inbox.held(CONV) == 0


def test_live_messages_above_a_sync_snapshot_stay_held_until_contiguous():
    inbox = Inbox()
    inbox.start_at(CONV, 1)
    inbox.receive(message(6), now=0.0)  # stored after the snapshot, pushed before its reply

    released = inbox.synced(CONV, messages=[message(2), message(3)], first_seq=2, last_seq=4,
                            has_more=False)

    assert seqs(released) == [2, 3]
    assert inbox.cursor(CONV) == 4
    assert inbox.held(CONV) == 1
    assert seqs(inbox.receive(message(5), now=0.1)) == [5, 6]


def test_sync_messages_already_released_are_counted_as_duplicates():
    inbox = Inbox()
    inbox.receive(message(1), now=0.0)
    inbox.receive(message(2), now=0.0)

    released = inbox.synced(CONV, messages=[message(1), message(2), message(3)], first_seq=1,
                            last_seq=3, has_more=False)

    assert seqs(released) == [3]
    assert inbox.stats.duplicates == 2


def test_a_gap_is_due_for_sync_after_about_a_second_and_rearms():
    inbox = Inbox()
    inbox.receive(message(1), now=10.0)
    inbox.receive(message(3), now=10.0)

    assert inbox.next_deadline() == 10.0 + GAP_HOLD_S
    assert inbox.gaps_due(10.0 + GAP_HOLD_S - 0.01) == []
    assert inbox.gaps_due(10.0 + GAP_HOLD_S) == [CONV]
    assert inbox.stats.gap_syncs == 1
    assert inbox.gaps_due(10.5 + GAP_HOLD_S) == []
    assert inbox.next_deadline() == 10.0 + 2 * GAP_HOLD_S
    assert inbox.gaps_due(10.0 + 2 * GAP_HOLD_S) == [CONV]
    assert inbox.stats.gap_syncs == 2


def test_nothing_is_due_once_the_gap_fills():
    inbox = Inbox()
    inbox.receive(message(2), now=0.0)
    inbox.receive(message(1), now=0.5)

    assert inbox.next_deadline() is None
    assert inbox.gaps_due(5.0) == []


def test_a_gap_behind_one_that_filled_gets_its_own_hold():
    inbox = Inbox()
    inbox.receive(message(2), now=0.0)
    inbox.receive(message(4), now=0.0)

    inbox.receive(message(1), now=0.8)  # releases 1 and 2; 4 now waits for 3

    assert inbox.gaps_due(0.0 + GAP_HOLD_S) == []
    assert inbox.gaps_due(0.8 + GAP_HOLD_S) == [CONV]


def test_ack_covers_only_what_is_held_without_a_gap():
    inbox = Inbox()
    inbox.receive(message(1), now=0.0)
    inbox.receive(message(3), now=0.0)

    assert inbox.acks_due() == {CONV: 1}
    assert inbox.acks_due() == {}
    inbox.receive(message(2), now=0.1)
    assert inbox.acks_due() == {CONV: 3}


def test_a_cursor_set_by_start_at_is_already_acked():
    inbox = Inbox()
    inbox.start_at(CONV, 7)
    inbox.start_at("c2", 3)

    assert inbox.acks_due() == {}
    inbox.receive(message(8), now=0.0)
    assert inbox.acks_due() == {CONV: 8}
    assert inbox.cursors() == {CONV: 8, "c2": 3}


def test_own_send_fills_its_seq():
    inbox = Inbox()
    inbox.receive(message(1), now=0.0)
    inbox.receive(message(3), now=0.0)

    assert seqs(inbox.own_send(CONV, 2, "mine")) == [3]
    assert inbox.cursor(CONV) == 3
    assert inbox.own_send(CONV, 4, "mine-2") == []
    assert seqs(inbox.receive(message(5), now=0.1)) == [5]
    assert inbox.acks_due() == {CONV: 5}


def test_own_send_in_an_unknown_conversation_at_seq_one_starts_it():
    inbox = Inbox()

    assert inbox.own_send(CONV, 1, "mine") == []
    assert inbox.cursor(CONV) == 1


def test_a_repeated_sent_for_a_seq_already_passed_changes_nothing():
    inbox = Inbox()
    inbox.own_send(CONV, 1, "mine")

    assert inbox.own_send(CONV, 1, "mine") == []  # a retry answered `duplicate: true`
    assert inbox.cursor(CONV) == 1
    assert inbox.next_deadline() is None


def test_a_gap_behind_an_own_send_is_due_for_sync():
    inbox = Inbox()
    inbox.receive(message(1), now=0.0)

    inbox.own_send(CONV, 3, "mine")  # seq 2 was someone else's, and its push is late or lost

    assert inbox.cursor(CONV) == 1
    assert inbox.gaps_due(GAP_HOLD_S) == [CONV]


def test_an_own_message_returned_by_sync_is_not_released_again():
    inbox = Inbox()
    inbox.receive(message(1), now=0.0)
    inbox.own_send(CONV, 3, "mine")

    released = inbox.synced(CONV, messages=[message(2), message(3, message_id="mine")],
                            first_seq=1, last_seq=3, has_more=False)

    assert seqs(released) == [2]
    assert inbox.cursor(CONV) == 3


def test_forget_drops_the_conversation_and_its_held_messages():
    inbox = Inbox()
    inbox.receive(message(3), now=0.0)

    inbox.forget(CONV)

    assert not inbox.knows(CONV)
    assert inbox.held(CONV) == 0
    assert inbox.next_deadline() is None
    assert inbox.cursors() == {}


def test_conversations_keep_their_own_order():
    inbox = Inbox()
    inbox.receive(message(2, "a"), now=0.0)

    assert seqs(inbox.receive(message(1, "b"), now=0.0)) == [1]
    assert inbox.cursors() == {"a": 0, "b": 1}


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, list[int]]:
    """Seqs 1..n in any order, some never delivered, some delivered more than once."""
    n = draw(st.integers(min_value=1, max_value=40))
    order = draw(st.permutations(range(1, n + 1)))
    arrived = [seq for seq in order if draw(st.booleans()) or draw(st.booleans())]
    repeats = draw(st.lists(st.sampled_from(arrived), max_size=10)) if arrived else []
    for seq in repeats:
        arrived.insert(draw(st.integers(min_value=0, max_value=len(arrived))), seq)
    return n, arrived


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_any_arrival_order_then_a_sync_releases_every_seq_once_in_order(case):
    n, arrived = case
    inbox = Inbox()
    released = []
    for tick, seq in enumerate(arrived):
        released += inbox.receive(message(seq), now=tick * 0.1)
        inbox.gaps_due(tick * 0.1)

    # The server answers with everything it stores after the cursor the client sent.
    cursor = inbox.cursor(CONV) or 0
    released += inbox.synced(CONV, messages=[message(seq) for seq in range(cursor + 1, n + 1)],
                             first_seq=1, last_seq=n, has_more=False)

    assert seqs(released) == list(range(1, n + 1))
    assert inbox.held(CONV) == 0
    assert inbox.next_deadline() is None
