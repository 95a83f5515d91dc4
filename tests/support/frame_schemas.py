"""The server's frames as `docs/asyncapi.yaml` documents them, for tests that check what the
server really pushes: a frame is one of the protocol when its `type` is documented, it has no
field its schema does not list, and it is valid against that schema (the document's own JSON
Schema, `$ref`s and all, as tests/unit/test_api_documents.py checks the examples)."""

from __future__ import annotations

import functools
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


EcmaDraft7Validator = jsonschema.validators.extend(jsonschema.Draft7Validator,
                                                   {"pattern": _ecma_pattern})


@functools.cache
def _server_frames() -> dict[str, tuple[jsonschema.Draft7Validator, frozenset[str]]]:
    """Frame type -> (its payload's validator, the fields it documents)."""
    document = load(ASYNCAPI_PATH)
    frames = {}
    for key, message in document["components"]["messages"].items():
        fields = properties_of(document, message["payload"])
        if "type" not in fields:
            continue  # a client frame (it has an `action`)
        # Draft 7 ignores the keywords beside `$ref`, so the document is only a container.
        root = {**document, "$ref": f"#/components/messages/{key}/payload"}
        frames[fields["type"]["const"]] = (EcmaDraft7Validator(root), frozenset(fields))
    return frames


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
