"""Ephemera's Lambda handlers: events in, service calls, replies out. No SQL, no rules here."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from chalice import Chalice, CORSConfig, Rate, Response
from chalice.app import SQSEvent, WebsocketEvent

from chalicelib import bootstrap, observability
from chalicelib.errors import EphemeraError
from chalicelib.identity import Principal
from chalicelib.inputs import json_object, source_ip
from chalicelib.replies import handshake_refusal, json_response, no_content, rest
from chalicelib.services import (
    account,
    auth,
    conversations,
    delivery,
    erasure,
    expiry,
    fanout,
    frames,
    health,
    membership,
    presence,
    reading,
    sockets,
)
from chalicelib.storage import migrate

bootstrap.fail_fast_in_lambda()
app = Chalice(app_name="ephemera")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.register_middleware(observability.log_invocation, "all")
# The deployed web client (on CloudFront) calls the API at its execute-api address, not through
# CloudFront, so API Gateway sees the caller's own address (the login limits and a code's network
# binding use it). Any origin may: the API authenticates by bearer token, never by cookie, so a
# foreign page gains nothing a script could not. API Gateway answers preflights itself (MOCK).
app.api.cors = CORSConfig(allow_origin="*", allow_headers=["Authorization", "Content-Type"],
                          expose_headers=["Retry-After"], max_age=600)


def api_route(path: str, method: str) -> Callable[[Callable[..., Response]], Any]:
    """A REST route whose failures keep the protocol's error shape. Any content type is let
    through: bodies are parsed here, and what is not JSON gets `bad_request`, not a 415."""

    def register(view: Callable[..., Response]) -> Any:
        return app.route(path, methods=[method], content_types=["*/*"])(rest(view))

    return register


def body() -> dict:
    return json_object(app.current_request.raw_body)


def query() -> dict[str, str]:
    return dict(app.current_request.query_params or {})


def caller() -> Principal:
    return auth.authenticate(app.current_request.headers.get("authorization"),
                             bootstrap.get_context())


@api_route("/health", "GET")
def get_health() -> Response:
    report = health.check(bootstrap.get_context())
    reply = {"ok": report.ok, "schema_version": report.schema_version}
    return json_response(reply, status=200 if report.ok else 503)


# --- authentication ---------------------------------------------------------------------


@api_route("/auth/otp", "POST")
def request_code() -> Response:
    ip = source_ip(app.current_request.context)
    reply = auth.request_code(body().get("phone"), ip, bootstrap.get_context())
    return json_response(reply, status=202)


@api_route("/auth/verify", "POST")
def verify_code() -> Response:
    fields = body()
    session = auth.verify_code(fields.get("challenge_id"), fields.get("code"),
                               fields.get("device_name"), bootstrap.get_context())
    return json_response(session.to_reply())


@api_route("/auth/refresh", "POST")
def refresh_session() -> Response:
    session = auth.refresh(body().get("refresh_token"), bootstrap.get_context())
    return json_response(session.to_reply())


@api_route("/auth/logout", "POST")
def logout() -> Response:
    auth.logout(caller(), bootstrap.get_context())
    return no_content()


@api_route("/devices", "GET")
def list_devices() -> Response:
    return json_response({"devices": auth.list_devices(caller(), bootstrap.get_context())})


@api_route("/devices/{device_id}", "DELETE")
def revoke_device(device_id: str) -> Response:
    auth.revoke_device(caller(), device_id, bootstrap.get_context())
    return no_content()


@api_route("/ws/ticket", "POST")
def issue_ticket() -> Response:
    reply = auth.issue_ticket(caller(), bootstrap.ws_public_url(), bootstrap.get_context())
    return json_response(reply)


# --- conversations ----------------------------------------------------------------------


@api_route("/conversations", "POST")
def create_conversation() -> Response:
    view, created = conversations.create(caller().user_id, body(), bootstrap.get_context())
    return json_response(view, status=201 if created else 200)


@api_route("/conversations", "GET")
def list_conversations() -> Response:
    page = conversations.list_for(caller().user_id, query(), bootstrap.get_context())
    return json_response(page)


@api_route("/conversations/{conversation_id}", "PATCH")
def update_conversation(conversation_id: str) -> Response:
    view = conversations.update(caller().user_id, conversation_id, body(),
                                bootstrap.get_context())
    return json_response(view)


@api_route("/conversations/{conversation_id}/messages", "GET")
def conversation_history(conversation_id: str) -> Response:
    page = reading.history(caller().user_id, conversation_id, query(),
                           bootstrap.get_context())
    return json_response(page)


@api_route("/conversations/{conversation_id}/accept", "POST")
def accept_conversation(conversation_id: str) -> Response:
    view = conversations.accept(caller().user_id, conversation_id, bootstrap.get_context())
    return json_response(view)


@api_route("/conversations/{conversation_id}/decline", "POST")
def decline_conversation(conversation_id: str) -> Response:
    conversations.decline(caller().user_id, conversation_id, body(), bootstrap.get_context())
    return no_content()


@api_route("/conversations/{conversation_id}/members", "POST")
def add_members(conversation_id: str) -> Response:
    view = membership.add_members(caller().user_id, conversation_id, body(),
                                  bootstrap.get_context())
    return json_response(view)


@api_route("/conversations/{conversation_id}/members/{user_id}", "DELETE")
def remove_member(conversation_id: str, user_id: str) -> Response:
    membership.remove_member(caller().user_id, conversation_id, user_id,
                             bootstrap.get_context())
    return no_content()


@api_route("/conversations/{conversation_id}/members/{user_id}", "PATCH")
def change_member_role(conversation_id: str, user_id: str) -> Response:
    view = membership.change_role(caller().user_id, conversation_id, user_id, body(),
                                  bootstrap.get_context())
    return json_response(view)


# --- the account: profile, settings, blocks ----------------------------------------------


@api_route("/me", "GET")
def get_me() -> Response:
    return json_response(account.me(caller().user_id, bootstrap.get_context()))


@api_route("/me", "PATCH")
def update_me() -> Response:
    return json_response(account.update_me(caller().user_id, body(), bootstrap.get_context()))


@api_route("/me/delete-challenge", "POST")
def request_deletion_code() -> Response:
    reply = erasure.request_code(caller(), source_ip(app.current_request.context),
                                 bootstrap.get_context())
    return json_response(reply, status=202)


@api_route("/me", "DELETE")
def delete_me() -> Response:
    erasure.delete_account(caller(), body(), bootstrap.get_context())
    return no_content()


@api_route("/me/export", "GET")
def export_me() -> Response:
    return json_response(account.export(caller().user_id, bootstrap.get_context()))


@api_route("/blocks", "GET")
def list_blocks() -> Response:
    return json_response(account.list_blocks(caller().user_id, bootstrap.get_context()))


@api_route("/blocks", "POST")
def block_user() -> Response:
    return json_response(account.block(caller().user_id, body(), bootstrap.get_context()))


@api_route("/blocks/{user_id}", "DELETE")
def unblock_user(user_id: str) -> Response:
    account.unblock(caller().user_id, user_id, bootstrap.get_context())
    return no_content()


# --- WebSocket --------------------------------------------------------------------------


@app.on_ws_connect()
def ws_connect(event: WebsocketEvent) -> Response:
    query = event.to_dict().get("queryStringParameters") or {}
    try:
        sockets.open_connection(query.get("ticket"), event.connection_id,
                                bootstrap.get_context())
    except EphemeraError as error:
        return handshake_refusal(error)
    return Response(body="", status_code=200)


@app.on_ws_message()
def ws_message(event: WebsocketEvent) -> None:
    # The raw body, not event.body: Chalice turns a missing body into the string "None".
    raw_event = event.to_dict()
    frames.handle_frame(raw_event.get("body"), event.connection_id, bootstrap.get_context(),
                        received_at=raw_event["requestContext"].get("requestTimeEpoch"))


@app.on_ws_disconnect()
def ws_disconnect(event: WebsocketEvent) -> None:
    sockets.close_connection(event.connection_id, bootstrap.get_context())


# --- fan-out ----------------------------------------------------------------------------


@app.on_sqs_message(queue=fanout.queue_name(os.environ.get("STAGE", "local")), batch_size=1,
                    name="fanout_worker")
def fanout_worker(event: SQSEvent) -> None:
    """Big fan-outs, queued by the invocation that caused them (services/fanout.py). Raising
    leaves the message on the queue: it comes back, and after its last try goes to the
    dead-letter queue."""
    delivery.work_fanout([delivery.QueuedBatch.of_sqs(record.to_dict()) for record in event],
                         bootstrap.get_context())


# --- deploy -----------------------------------------------------------------------------


@app.lambda_function(name="migrate")
def migrate_database(event: object, context: object) -> dict[str, Any]:
    """Invoked once by `make deploy` (no trigger): the only code that reaches the database in
    the VPC. Applies pending migrations and the binlog retention; safe to run again."""
    return migrate.upgrade(bootstrap.get_db())


# --- schedule ---------------------------------------------------------------------------


@app.schedule(Rate(1, unit=Rate.MINUTES), name="scheduled_cleanup")
def scheduled_cleanup(event: object) -> dict[str, Any]:
    return expiry.run_scheduled(bootstrap.get_config(), bootstrap.get_context())


@app.schedule(Rate(1, unit=Rate.MINUTES), name="presence_watch")
def presence_watch(event: object) -> dict[str, Any]:
    """Mostly waiting (for a socket to fall silent), so a function of its own at 128 MB:
    the cleanup's memory would bill the wait eight times over."""
    return presence.run_scheduled_watch(bootstrap.get_config(), bootstrap.get_context())
