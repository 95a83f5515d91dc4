"""The API documents: `docs/openapi.yaml` (REST) and `docs/asyncapi.yaml` (WebSocket).

Each is checked by its official validator (openapi-spec-validator; the AsyncAPI parser through
`tools/asyncapi/validate.mjs`), against the routes the app really serves, and against the client
contract (PROTOCOL.md): frame types, their fields and the error codes. Every check is shown to
reject a broken copy, so none of them can pass vacuously.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from chalicelib.services.messaging import MAX_BATCH

ROOT = Path(__file__).parents[2]
OPENAPI_PATH = ROOT / "docs" / "openapi.yaml"
ASYNCAPI_PATH = ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_TOOL = ROOT / "tools" / "asyncapi"
NPM_CI = "npm ci --prefix tools/asyncapi"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# PROTOCOL.md: the v1 REST table, the v1.1 routes the app serves ("Safety, management and the
# account": consent, the account, blocks), plus /health and the local stack's /dev/outbox.
PROTOCOL_ROUTES = {
    ("POST", "/auth/otp"), ("POST", "/auth/verify"), ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"), ("GET", "/devices"), ("DELETE", "/devices/{device_id}"),
    ("POST", "/ws/ticket"), ("POST", "/conversations"), ("GET", "/conversations"),
    ("PATCH", "/conversations/{conversation_id}"),
    ("GET", "/conversations/{conversation_id}/messages"),
    ("POST", "/conversations/{conversation_id}/accept"),
    ("POST", "/conversations/{conversation_id}/decline"),
    ("GET", "/me"), ("PATCH", "/me"),
    ("GET", "/blocks"), ("POST", "/blocks"), ("DELETE", "/blocks/{user_id}"),
    ("POST", "/me/delete-challenge"), ("DELETE", "/me"), ("GET", "/me/export"),
    ("GET", "/health"), ("GET", "/dev/outbox"),
}
PUBLIC_ROUTES = {
    ("GET", "/health"), ("POST", "/auth/otp"), ("POST", "/auth/verify"),
    ("POST", "/auth/refresh"), ("GET", "/dev/outbox"),
}
ERROR_CODES = {"bad_request", "unauthorized", "forbidden", "not_found", "conflict", "gone",
               "too_large", "rate_limited", "internal"}
# Client frames: action -> fields besides `action`; server frames: type -> fields besides `type`.
CLIENT_FRAMES = {
    "send": {"req", "conversation_id", "client_msg_id", "body", "messages"},
    "ack": {"req", "conversation_id", "seq"},
    "read": {"req", "conversation_id", "seq"},
    "sync": {"req", "cursors", "limit"},
    "ping": {"req"},
    # v1.1: unsend and typing
    "unsend": {"req", "conversation_id", "seq"},
    "typing": {"req", "conversation_id", "active"},
}
MESSAGE_FIELDS = {"conversation_id", "message_id", "seq", "sender_id", "sender_device_id",
                  "client_msg_id", "body", "created_at", "expires_at"}
SERVER_FRAMES = {
    "sent": {"req", "conversation_id", "client_msg_id", "message_id", "seq", "created_at",
             "expires_at", "duplicate", "expired"},
    "message": MESSAGE_FIELDS,
    "receipt": {"conversation_id", "user_id", "kind", "seq"},
    "unread": {"conversation_id", "count"},
    "presence": {"user_id", "online", "last_seen_at"},
    "sync": {"req", "server_time", "conversations", "more_conversations"},
    "expired": {"conversation_id", "ranges", "up_to_seq", "reason"},
    "pong": {"req", "server_time"},
    "error": {"req", "code", "message", "retry_after_ms"},
    # v1.1: typing (and `expired`'s `req`, below)
    "typing": {"conversation_id", "user_id", "active"},
}
# Group membership and conversation frames (v1.1, "Safety, management and the account").
PROTOCOL_ROUTES |= {
    ("POST", "/conversations/{conversation_id}/members"),
    ("DELETE", "/conversations/{conversation_id}/members/{user_id}"),
    ("PATCH", "/conversations/{conversation_id}/members/{user_id}"),
}
SERVER_FRAMES |= {
    "member": {"conversation_id", "user_id", "change", "role", "by"},
    "conversation": {"conversation", "change", "by"},
}
SERVER_FRAMES["expired"] = SERVER_FRAMES["expired"] | {"req"}  # an unsend's answer
# Ours, beyond the protocol (added, so a client that ignores it loses nothing): when the
# typist's frame reached the server, for receivers to tell a stop from the start it overtook.
SERVER_FRAMES["typing"] = SERVER_FRAMES["typing"] | {"at"}
SYNC_CONVERSATION_FIELDS = {"conversation_id", "last_seq", "read_seq", "unread_count",
                            "messages", "has_more", "first_seq"}
# REST bodies (PROTOCOL v1 and v1.1): schema name -> (every field, those that may be null).
# Every field is required: one that privacy hides is null, never dropped.
REST_SCHEMAS = {
    "Conversation": ({"id", "kind", "title", "ttl_seconds", "last_seq", "read_seq",
                      "unread_count", "last_message", "request", "members",
                      "presence_pushed"},  # issue 24: presence in big groups
                     {"title", "last_message"}),
    "Member": ({"user_id", "phone", "display_name", "role", "online", "last_seen_at",
                "read_seq", "delivered_seq"},
               {"display_name", "online", "last_seen_at", "read_seq", "delivered_seq"}),
    "Me": ({"id", "phone", "display_name", "settings"}, {"display_name"}),
    "Block": ({"user_id", "phone", "display_name", "blocked_at"}, {"display_name"}),
}
ME_SETTINGS = {"message_requests", "read_receipts"}


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


def dump(document: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return load(OPENAPI_PATH)


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    return load(ASYNCAPI_PATH)


def resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow local `$ref`s (`#/a/b`) until a node that is not a reference."""
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"]
        assert pointer.startswith("#/"), f"only local references are used: {pointer}"
        node = document
        for part in pointer[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def properties_of(document: dict[str, Any], schema: Any) -> dict[str, Any]:
    """An object schema's properties, `allOf` parts merged."""
    schema = resolve(document, schema)
    merged = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        merged.update(properties_of(document, part))
    return merged


def operations_of(openapi: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in openapi["paths"].items()
        for method, operation in item.items() if method in HTTP_METHODS
    }


def validate_openapi_file(path: Path) -> None:
    validate(load(path), cls=OpenAPIV31SpecValidator)


def run_asyncapi_parser(path: Path) -> subprocess.CompletedProcess[str]:
    """`node tools/asyncapi/validate.mjs FILE`; fails (never skips) without the tooling."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"Node.js is needed to validate the AsyncAPI document: install Node 20+,"
                    f" then run `{NPM_CI}`")
    if not (ASYNCAPI_TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail(f"the AsyncAPI parser is not installed: run `{NPM_CI}`")
    return subprocess.run(
        [node, str(ASYNCAPI_TOOL / "validate.mjs"), str(path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )


def undocumented_routes(routes: dict[str, dict[str, Any]],
                        openapi: dict[str, Any]) -> list[str]:
    """Chalice's `app.routes` (path -> {method: entry}) that the document lacks."""
    documented = set(operations_of(openapi))
    return sorted(f"{method} {path}" for path, methods in routes.items()
                  for method in methods if (method.upper(), path) not in documented)


def asyncapi_frames(asyncapi: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(client frames by `action`, server frames by `type`), each the message object.

    Client frames are what the server's `receive` operations take; server frames are what
    its `send` operations and the replies to client frames carry. A message is named by its
    payload's `action` or `type` constant, and its `name` must say the same.
    """
    client: dict[str, Any] = {}
    server: dict[str, Any] = {}

    def add(frames: dict[str, Any], discriminator: str, reference: Any) -> None:
        message = resolve(asyncapi, reference)
        name = properties_of(asyncapi, message["payload"])[discriminator]["const"]
        assert message["name"] == name, f"message named {message['name']!r} carries {name!r}"
        assert frames.setdefault(name, message) is message, f"two different {name!r} frames"


    for operation in asyncapi["operations"].values():
        if operation["action"] == "receive":
            for reference in operation["messages"]:
                add(client, "action", reference)
            for reference in operation.get("reply", {}).get("messages", []):
                add(server, "type", reference)
        else:
            for reference in operation["messages"]:
                add(server, "type", reference)
    return client, server


def example_errors(schema: Any, document: dict[str, Any], instance: Any,
                   validator: type[jsonschema.protocols.Validator]) -> list[str]:
    """Where `instance` breaks `schema`, whose `$ref`s point into `document`."""
    root = {**document, "$ref": schema["$ref"]} if "$ref" in schema else {**document, **schema}
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator(root).iter_errors(instance)]


def asyncapi_example_errors(asyncapi: dict[str, Any]) -> list[str]:
    errors = []
    for key, message in asyncapi["components"]["messages"].items():
        for example in message.get("examples", []):
            # Draft 7 ignores the keywords beside `$ref`, so the document is only a container.
            root = {**asyncapi, "$ref": f"#/components/messages/{key}/payload"}
            errors += [f"{key} / {example['name']}: {'/'.join(map(str, e.absolute_path))}:"
                       f" {e.message}"
                       for e in jsonschema.Draft7Validator(root).iter_errors(example["payload"])]
    return errors


def openapi_example_errors(openapi: dict[str, Any]) -> list[str]:
    errors = []
    responses = [(f"{method} {path} {status}", response)
                 for (method, path), operation in operations_of(openapi).items()
                 for status, response in operation.get("responses", {}).items()]
    responses += list(openapi["components"].get("responses", {}).items())
    for where, response in responses:
        for media in resolve(openapi, response).get("content", {}).values():
            if "example" in media:
                errors += [f"{where}: {error}" for error in example_errors(
                    media["schema"], openapi, media["example"], jsonschema.Draft202012Validator)]
    return errors


# --- OpenAPI ------------------------------------------------------------------------------


def test_the_openapi_document_is_valid_openapi_3_1(openapi):
    assert openapi["openapi"].startswith("3.1.")
    validate(openapi, cls=OpenAPIV31SpecValidator)


BREAK_OPENAPI: dict[str, Callable[[dict[str, Any]], None]] = {
    "a schema of a type that does not exist": lambda doc: doc["components"]["schemas"][
        "Seq"].update(type="number-ish"),
    "a path parameter that is never declared": lambda doc: doc["paths"][
        "/devices/{device_id}"]["delete"].pop("parameters"),
    "two operations with one id": lambda doc: doc["paths"]["/devices"]["get"].update(
        operationId="get_health"),
    "no info": lambda doc: doc.pop("info"),
}


@pytest.mark.parametrize("breakage", BREAK_OPENAPI, ids=list(BREAK_OPENAPI))
def test_a_broken_copy_of_the_openapi_document_is_rejected(openapi, tmp_path, breakage):
    broken = copy.deepcopy(openapi)
    BREAK_OPENAPI[breakage](broken)
    path = dump(broken, tmp_path / "openapi.yaml")
    with pytest.raises(OpenAPIValidationError):
        validate_openapi_file(path)


def test_every_route_the_app_serves_is_documented_with_its_method(openapi):
    from app import app

    assert app.routes, "the app declares no routes: the check would prove nothing"
    assert undocumented_routes(app.routes, openapi) == []


def test_a_route_of_the_app_missing_from_the_document_is_reported(openapi):
    from app import app

    pruned = copy.deepcopy(openapi)
    del pruned["paths"]["/health"]
    pruned["paths"]["/devices/{device_id}"].pop("delete")
    missing = undocumented_routes(app.routes, pruned)
    assert "GET /health" in missing
    assert "DELETE /devices/{device_id}" in missing


def test_the_openapi_document_has_every_route_of_the_protocol_and_no_other(openapi):
    assert set(operations_of(openapi)) == PROTOCOL_ROUTES


def rest_schema_errors(openapi: dict[str, Any]) -> list[str]:
    """Where the REST bodies differ from REST_SCHEMAS: fields, required, nullability."""
    errors = []
    schemas = openapi["components"]["schemas"]
    for name, (fields, nullable) in REST_SCHEMAS.items():
        properties = properties_of(openapi, schemas[name])
        if set(properties) != fields:
            errors.append(f"{name}: fields {sorted(set(properties) ^ fields)}")
        if set(schemas[name].get("required", [])) != fields:
            errors.append(f"{name}: required {sorted(set(schemas[name]['required']) ^ fields)}")
        for field in fields & set(properties):
            schema = resolve(openapi, properties[field])
            types = schema.get("type")
            is_nullable = (isinstance(types, list) and "null" in types) or any(
                option.get("type") == "null" for option in schema.get("oneOf", []))
            if is_nullable != (field in nullable):
                errors.append(f"{name}.{field}: nullable is {is_nullable}")
    return errors


def test_the_rest_bodies_have_the_fields_of_the_protocol(openapi):
    assert rest_schema_errors(openapi) == []
    schemas = openapi["components"]["schemas"]
    assert schemas["Member"]["properties"]["role"]["enum"] == ["owner", "admin", "member"]
    settings = schemas["Me"]["properties"]["settings"]
    assert set(settings["properties"]) == set(settings["required"]) == ME_SETTINGS
    patch = openapi["paths"]["/me"]["patch"]["requestBody"]["content"]["application/json"][
        "schema"]
    assert set(patch["properties"]) == {"display_name", *ME_SETTINGS}
    decline = openapi["paths"]["/conversations/{conversation_id}/decline"]["post"]
    assert set(decline["requestBody"]["content"]["application/json"]["schema"][
        "properties"]) == {"block"}


def test_a_rest_body_that_drops_or_unhides_a_field_is_reported(openapi):
    broken = copy.deepcopy(openapi)
    member = broken["components"]["schemas"]["Member"]
    member["properties"].pop("role")
    member["properties"]["online"]["type"] = "boolean"
    broken["components"]["schemas"]["Conversation"]["required"].remove("request")
    errors = rest_schema_errors(broken)
    assert "Member: fields ['role']" in errors
    assert "Member.online: nullable is False" in errors
    assert "Conversation: required ['request']" in errors


def test_the_bounded_replies_are_documented(openapi):
    def query(path: str) -> dict[str, Any]:
        return {parameter["name"]: parameter["schema"]
                for parameter in openapi["paths"][path]["get"]["parameters"]
                if parameter.get("in") == "query"}

    listing = query("/conversations")
    assert set(listing) == {"limit", "cursor"}
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"],
            listing["limit"]["default"]) == (1, 200, 50)
    page = openapi["paths"]["/conversations"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    assert "next_cursor" in page["required"]
    assert page["properties"]["next_cursor"]["type"] == ["string", "null"]
    history = query("/conversations/{conversation_id}/messages")
    assert set(history) == {"after_seq", "before_seq", "limit"}
    assert history["before_seq"]["minimum"] == 1
    assert history["after_seq"]["maximum"] == history["before_seq"]["maximum"] == 2**53 - 1


def test_the_dev_outbox_is_documented_as_local_only(openapi):
    description = openapi["paths"]["/dev/outbox"]["get"]["description"]
    assert "local stack" in description
    assert "stage `local`" in description


def test_authenticated_routes_take_the_bearer_token_and_public_ones_do_not(openapi):
    scheme = openapi["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "security" not in openapi, "each operation states its own security"
    for route, operation in operations_of(openapi).items():
        expected = [] if route in PUBLIC_ROUTES else [{"bearerAuth": []}]
        assert operation["security"] == expected, route
        if route not in PUBLIC_ROUTES:
            assert "401" in operation["responses"], route


def test_every_429_response_documents_the_retry_after_header(openapi):
    limited = [route for route, operation in operations_of(openapi).items()
               if "429" in operation["responses"]]
    assert limited, "no route documents a rate limit"
    for route in limited:
        response = resolve(openapi, operations_of(openapi)[route]["responses"]["429"])
        header = resolve(openapi, response["headers"]["Retry-After"])
        assert header["schema"]["type"] == "integer", route


def test_every_error_response_has_the_error_shape(openapi):
    for route, operation in operations_of(openapi).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400 and route != ("GET", "/health"):
                schema = resolve(openapi, response)["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (route, status)


def test_the_error_codes_are_exactly_those_of_the_protocol(openapi, asyncapi):
    rest = openapi["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(rest["properties"]["code"]["enum"]) == ERROR_CODES
    assert rest["additionalProperties"] is True
    frame = properties_of(asyncapi, asyncapi["components"]["messages"]["error"]["payload"])
    assert set(frame["code"]["enum"]) == ERROR_CODES


def test_the_openapi_examples_match_their_schemas(openapi):
    assert openapi_example_errors(openapi) == []


def test_an_openapi_example_that_breaks_its_schema_is_reported(openapi):
    broken = copy.deepcopy(openapi)
    broken["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"][
        "example"] = {"ok": "yes"}
    broken["components"]["responses"]["NotFound"]["content"]["application/json"]["example"][
        "error"]["code"] = "missing"
    errors = openapi_example_errors(broken)
    assert any(error.startswith("GET /health 200: ok:") for error in errors), errors
    assert any(error.startswith("GET /health 200: : 'schema_version'") for error in errors)
    assert any(error.startswith("NotFound: error/code:") for error in errors), errors


# --- AsyncAPI -----------------------------------------------------------------------------


def test_the_asyncapi_document_is_valid_asyncapi_3(asyncapi):
    assert asyncapi["asyncapi"].startswith("3.")
    result = run_asyncapi_parser(ASYNCAPI_PATH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid AsyncAPI" in result.stdout


BREAK_ASYNCAPI: dict[str, Callable[[dict[str, Any]], None]] = {
    "an operation that is neither send nor receive": lambda doc: doc["operations"][
        "sendPong"].update(action="transmit"),
    "a reference to a message that does not exist": lambda doc: doc["operations"][
        "receivePing"]["reply"]["messages"].append({"$ref": "#/channels/socket/messages/pang"}),
    "a server without a protocol": lambda doc: doc["servers"]["local"].pop("protocol"),
}


@pytest.mark.parametrize("breakage", BREAK_ASYNCAPI, ids=list(BREAK_ASYNCAPI))
def test_a_broken_copy_of_the_asyncapi_document_is_rejected(asyncapi, tmp_path, breakage):
    broken = copy.deepcopy(asyncapi)
    BREAK_ASYNCAPI[breakage](broken)
    result = run_asyncapi_parser(dump(broken, tmp_path / "asyncapi.yaml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert " error " in result.stderr
    assert "invalid AsyncAPI document" in result.stderr


def test_the_asyncapi_document_names_exactly_the_frame_types_of_the_protocol(asyncapi):
    client, server = asyncapi_frames(asyncapi)
    assert set(client) == set(CLIENT_FRAMES)
    assert set(server) == set(SERVER_FRAMES)
    channel = {id(resolve(asyncapi, ref)) for ref in asyncapi["channels"]["socket"]["messages"]
               .values()}
    assert channel == {id(message) for message in [*client.values(), *server.values()]}, (
        "the channel carries a message no operation uses")


def test_a_missing_or_extra_frame_type_is_noticed(asyncapi):
    pruned = copy.deepcopy(asyncapi)
    del pruned["operations"]["sendUnread"]
    pruned["components"]["messages"]["pong"]["payload"]["properties"]["type"]["const"] = "pang"
    pruned["components"]["messages"]["pong"]["name"] = "pang"
    client, server = asyncapi_frames(pruned)
    assert set(client) == set(CLIENT_FRAMES)
    assert set(SERVER_FRAMES) - set(server) == {"unread", "pong"}
    assert set(server) - set(SERVER_FRAMES) == {"pang"}


def test_every_frame_has_exactly_the_fields_of_the_protocol(asyncapi):
    client, server = asyncapi_frames(asyncapi)
    for action, message in client.items():
        fields = set(properties_of(asyncapi, message["payload"])) - {"action"}
        assert fields == CLIENT_FRAMES[action], action
    for frame_type, message in server.items():
        fields = set(properties_of(asyncapi, message["payload"])) - {"type"}
        assert fields == SERVER_FRAMES[frame_type], frame_type
    sync_reply = properties_of(asyncapi, server["sync"]["payload"])["conversations"]["items"]
    assert set(properties_of(asyncapi, sync_reply)) == SYNC_CONVERSATION_FIELDS
    message_items = properties_of(asyncapi, sync_reply)["messages"]["items"]
    assert set(properties_of(asyncapi, message_items)) == MESSAGE_FIELDS


def test_the_frame_constraints_are_those_of_the_protocol(asyncapi):
    client, server = asyncapi_frames(asyncapi)
    send = properties_of(asyncapi, client["send"]["payload"])
    assert resolve(asyncapi, send["client_msg_id"])["pattern"] == "^[A-Za-z0-9_-]{8,64}$"
    assert resolve(asyncapi, send["body"])["maxLength"] == 16384
    limit = properties_of(asyncapi, client["sync"]["payload"])["limit"]
    assert (limit["default"], limit["maximum"]) == (100, 500)
    receipt = properties_of(asyncapi, server["receipt"]["payload"])
    assert receipt["kind"]["enum"] == ["delivered", "read"]
    expired = properties_of(asyncapi, server["expired"]["payload"])
    assert expired["reason"]["enum"] == ["expired", "unsent"]


def test_the_batch_form_of_send_is_documented_with_its_bound(asyncapi):
    client, _ = asyncapi_frames(asyncapi)
    listed = properties_of(asyncapi, client["send"]["payload"])["messages"]
    assert (listed["minItems"], listed["maxItems"]) == (1, MAX_BATCH)
    assert set(properties_of(asyncapi, listed["items"])) == {"client_msg_id", "body"}
    assert "Keeping order" in asyncapi["info"]["description"]


def test_the_handshake_and_the_socket_limits_are_described(asyncapi):
    text = asyncapi["info"]["description"] + asyncapi["channels"]["socket"]["description"]
    for fact in ("`401`", "`403`", "`429`", "1009", "32 KB", "10 minutes", "2 hours"):
        assert fact in text, fact
    query = asyncapi["channels"]["socket"]["bindings"]["ws"]["query"]
    assert query["required"] == ["ticket"]


def test_the_asyncapi_examples_match_their_payloads(asyncapi):
    assert all(message.get("examples") for message in asyncapi["components"]["messages"]
               .values()), "every frame has an example"
    assert asyncapi_example_errors(asyncapi) == []


def test_an_asyncapi_example_that_breaks_its_payload_is_reported(asyncapi):
    broken = copy.deepcopy(asyncapi)
    broken["components"]["messages"]["receipt"]["examples"][0]["payload"]["kind"] = "seen"
    broken["components"]["messages"]["send"]["examples"][0]["payload"]["client_msg_id"] = "short"
    errors = asyncapi_example_errors(broken)
    assert any(error.startswith("receipt / receipt: kind:") for error in errors), errors
    assert any(error.startswith("send / send: client_msg_id:") for error in errors), errors
