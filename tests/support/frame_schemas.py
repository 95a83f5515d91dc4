"""The frames as `docs/asyncapi.yaml` documents them, for tests that check what the server
really pushes and takes: a server frame is one of the protocol when its `type` is documented,
it has no field its schema does not list, and it is valid against that schema (the document's
own JSON Schema, `$ref`s and all, as tests/unit/test_api_documents.py checks the examples); a
client frame is one the document promises to take when it is valid against its action's."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema

from tests.unit.test_api_documents import ASYNCAPI_PATH, load, properties_of


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """`pattern` as JSON Schema means it (ECMA-262): `$` ends the text. Python's `$` also
    matches before a final newline too, which would pass an id with a newline at its end."""
    python_pattern = re.sub(r"(?<!\\)\$$", r"\\Z", pattern)
    if validator.is_type(instance, "string") and not re.search(python_pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# A whole number is a JSON number written as one, as the server reads it (JSON Schema would
# also take 1.0; Python's json makes that a float, which no count or seq is).
_WHOLE_NUMBERS = jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
    "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
EcmaDraft7Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"pattern": _ecma_pattern}, type_checker=_WHOLE_NUMBERS)


@functools.cache
def _frames(discriminator: str) -> dict[str, tuple[jsonschema.Draft7Validator, frozenset[str]]]:
    """Server frames by `type` or client frames by `action` -> (the payload's validator, the
    fields it documents)."""
    document = load(ASYNCAPI_PATH)
    frames = {}
    for key, message in document["components"]["messages"].items():
        fields = properties_of(document, message["payload"])
        if discriminator in fields:
            # Draft 7 ignores the keywords beside `$ref`, so the document is only a container.
            root = {**document, "$ref": f"#/components/messages/{key}/payload"}
            frames[fields[discriminator]["const"]] = (EcmaDraft7Validator(root),
                                                      frozenset(fields))
    return frames


def _server_frames() -> dict[str, tuple[jsonschema.Draft7Validator, frozenset[str]]]:
    return _frames("type")


def is_documented_client_frame(frame: Any) -> bool:
    """Whether the document says the server takes `frame` (an object with a known action,
    valid against that action's payload)."""
    if not isinstance(frame, dict) or not isinstance(frame.get("action"), str):
        return False
    try:  # the document's strings are text: "\ud800" is valid JSON but no text
        json.dumps(frame, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    found = _frames("action").get(frame["action"])
    return found is not None and found[0].is_valid(frame) and _batch_ids_differ(frame)


def _batch_ids_differ(frame: dict[str, Any]) -> bool:
    """What `send`'s description says and its schema cannot: each message of a batch has
    its own client_msg_id."""
    listed = frame.get("messages") if frame["action"] == "send" else None
    if not isinstance(listed, list):
        return True
    ids = [message.get("client_msg_id") for message in listed]
    return len(set(ids)) == len(ids)


def server_frame_errors(frame: Any) -> list[str]:
    """Where `frame` is not a server frame of the protocol; empty when it is one."""
    if not isinstance(frame, dict) or frame.get("type") not in _server_frames():
        return [f"not a documented frame type: {frame!r:.200}"]
    validator, fields = _server_frames()[frame["type"]]
    # The document's `error`: "Extra facts may sit beside `code`" (a conflict's client_msg_id).
    undocumented = set() if frame["type"] == "error" else set(frame) - fields
    errors = [f"{frame['type']}: undocumented field {name!r}" for name in sorted(undocumented)]
    errors += [f"{frame['type']}: {'/'.join(map(str, error.absolute_path))}: {error.message:.200}"
               for error in validator.iter_errors(frame)]
    return errors
