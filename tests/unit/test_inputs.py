"""Reading what clients send (`chalicelib.inputs`): JSON nested deeper than Python's parser
and encoder go is refused as a bad request, not a crash (the frame fuzzer found it)."""

from __future__ import annotations

import pytest

from chalicelib.errors import InvalidInput
from chalicelib.inputs import json_object, require_utf8


def nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("body", ['{"a":' + "[" * 5000 + "]" * 5000 + "}",
                                  '{"a":' * 5000 + "1" + "}" * 5000])
def test_a_body_nested_past_the_parsers_depth_is_a_bad_request(body):
    with pytest.raises(InvalidInput, match="nested too deeply"):
        json_object(body)


def test_a_value_nested_past_the_encoders_depth_is_a_bad_request():
    with pytest.raises(InvalidInput, match="nested too deeply"):
        require_utf8({"a": nested_list(5000)})


def test_a_value_nested_a_little_is_fine():
    require_utf8({"a": nested_list(50)})
    assert json_object('{"a":' + "[" * 50 + "]" * 50 + "}") == {"a": nested_list(49)}
