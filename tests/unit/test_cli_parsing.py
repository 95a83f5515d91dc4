"""The `ephemera` command's own logic, without a server: naming conversations, reading
durations, and the lines it prints."""

from __future__ import annotations

import pytest

from ephemera_client.cli import build_parser, conversation_ref
from ephemera_client.errors import ApiError
from ephemera_client.events import Expired, Receipt
from ephemera_client.formatting import Directory, duration, event_json, event_line, parse_duration

ME, BOB = "U0ME", "U0BOB"


@pytest.fixture
def names() -> Directory:
    directory = Directory(ME)
    directory.learn([
        {"id": "01AAA111", "kind": "direct", "title": None,
         "members": [{"user_id": ME, "phone": "+14155550101"},
                     {"user_id": BOB, "phone": "+14155550102", "display_name": "bob"}]},
        {"id": "01AAB222", "kind": "group", "title": "general", "members": []},
    ])
    return directory


@pytest.mark.parametrize("ref", ["01AAA111", "01AAA", "+14155550102", "bob"])
def test_a_direct_conversation_is_found_by_id_prefix_phone_or_name(names: Directory,
                                                                   ref: str) -> None:
    assert conversation_ref(ref, names)["id"] == "01AAA111"


def test_a_group_is_found_by_its_title_with_or_without_a_hash(names: Directory) -> None:
    assert conversation_ref("#general", names)["id"] == "01AAB222"
    assert conversation_ref("General", names)["id"] == "01AAB222"


def test_an_ambiguous_prefix_is_refused_with_the_candidates(names: Directory) -> None:
    with pytest.raises(ApiError) as refused:
        conversation_ref("01AA", names)
    assert "01AAA111" in refused.value.message and "01AAB222" in refused.value.message


def test_an_unknown_conversation_is_not_found(names: Directory) -> None:
    with pytest.raises(ApiError) as refused:
        conversation_ref("nothing", names)
    assert refused.value.code == "not_found"


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600),
                                               ("1h", 3600), ("7d", 604800)])
def test_durations_read_as_seconds_or_with_a_unit(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_durations_print_in_the_largest_unit_that_divides_them() -> None:
    assert [duration(s) for s in (86400, 5400, 45, None)] == ["1d", "90m", "45s", "-"]


def test_a_read_receipt_and_an_expiry_read_as_sentences(names: Directory) -> None:
    receipt = Receipt(raw={}, conversation_id="01AAA111", user_id=BOB, kind="read", seq=5)
    expired = Expired(raw={}, conversation_id="01AAB222", ranges=((1, 2), (4, 4)))
    assert event_line(receipt, names).endswith("#bob ✓✓ read by bob up to 5")
    assert event_line(expired, names).endswith("#general 3 messages expired")


def test_a_json_line_is_the_frame_with_its_event_name() -> None:
    frame = {"type": "receipt", "conversation_id": "c", "user_id": BOB, "kind": "read", "seq": 2}
    receipt = Receipt(raw=frame, conversation_id="c", user_id=BOB, kind="read", seq=2)
    assert event_json(receipt) == {"event": "receipt", **frame}


def test_global_flags_come_before_the_command_and_subcommands_pick_their_runner() -> None:
    args = build_parser().parse_args(["--profile", "work", "devices", "revoke", "D1"])
    assert (args.profile, args.device, args.run.__name__) == \
        ("work", "D1", "devices_revoke_command")
    assert build_parser().parse_args(["devices"]).run.__name__ == "devices_command"


@pytest.mark.parametrize("argv", [
    ["--url", "http://stage.example", "--profile", "ops", "smoke"],
    ["smoke", "--url", "http://stage.example", "--profile", "ops"],
    ["--profile", "ops", "smoke", "--url", "http://stage.example"],
])
def test_the_global_flags_may_come_before_or_after_the_command(argv: list[str]) -> None:
    arguments = build_parser().parse_args(argv)
    assert (arguments.url, arguments.profile) == ("http://stage.example", "ops")


def test_a_flag_before_the_command_survives_a_command_that_does_not_repeat_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EPHEMERA_PROFILE", raising=False)
    arguments = build_parser().parse_args(["--url", "http://stage.example", "members", "list",
                                           "general"])
    assert (arguments.url, arguments.profile) == ("http://stage.example", "default")


def test_a_nested_command_takes_the_global_flags_too() -> None:
    arguments = build_parser().parse_args(["devices", "revoke", "D1", "--url", "http://x"])
    assert arguments.url == "http://x"
