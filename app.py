"""Ephemera's Lambda handlers: events in, service calls, replies out. No SQL, no rules here."""

from __future__ import annotations

from chalice import Chalice, Rate, Response

from chalicelib import bootstrap, observability
from chalicelib.replies import json_response, rest
from chalicelib.services import expiry, health

bootstrap.fail_fast_in_lambda()
app = Chalice(app_name="ephemera")
app.register_middleware(observability.log_invocation, "all")


@app.route("/health", methods=["GET"])
@rest
def get_health() -> Response:
    report = health.check(bootstrap.get_db())
    body = {"ok": report.ok, "schema_version": report.schema_version}
    return json_response(body, status=200 if report.ok else 503)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="scheduled_cleanup")
def scheduled_cleanup(event: object) -> dict[str, int | bool]:
    report = expiry.purge_expired(db=bootstrap.get_db(), clock=bootstrap.get_clock())
    observability.logger.info("expiry run", extra={
        "deleted": report.deleted, "batches": report.batches, "finished": report.finished,
    })
    return {"deleted": report.deleted, "batches": report.batches, "finished": report.finished}
