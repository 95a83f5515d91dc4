"""The push adapter's SigV4 signer produces exactly botocore's `SigV4Auth` signature for the
management API's requests: what API Gateway checks is what botocore would have sent."""

from __future__ import annotations

import calendar
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.adapters.push import ApiGatewayPush, RetryPolicy
from chalicelib.adapters.sigv4 import Signer, host_header

ENDPOINT = "https://a1b2c3d4e5.execute-api.eu-west-3.amazonaws.com/prod"
HOST = "a1b2c3d4e5.execute-api.eu-west-3.amazonaws.com"
PATH = "/prod/@connections/L0SM9cOFvHcCIhw%3D"
BODY = '{"type":"message","body":"héllo 👋"}'.encode()
NOON = calendar.timegm((2026, 12, 1, 12, 0, 0))
ROLE = Credentials("ASIAEXAMPLEKEY", "secret/with+chars", token="session-token==")


def botocore_authorization(credentials: Credentials, method: str, url: str, body: bytes,
                           headers: dict[str, str], now: float,
                           region: str = "eu-west-3") -> str:
    """What botocore signs for the same request at the same instant."""
    request = AWSRequest(method=method, url=url, data=body,
                         headers={k: v for k, v in headers.items()
                                  if k.lower() not in ("authorization", "host",
                                                       "x-amz-security-token")})
    request.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    signer = SigV4Auth(credentials, "execute-api", region)
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    return request.headers["Authorization"]


@pytest.mark.parametrize("method, body, content_type", [
    ("POST", BODY, "application/json"),
    ("DELETE", b"", None),
    ("GET", b"", None),
])
@pytest.mark.parametrize("credentials", [ROLE, Credentials("AKIAEXAMPLEKEY", "plain-secret")],
                         ids=["role with a session token", "long-term keys"])
def test_the_signature_is_botocores_for_every_management_call(
        method, body, content_type, credentials):
    signer = Signer(credentials, host=HOST, region="eu-west-3", service="execute-api")

    headers = signer.headers(method, PATH, body, content_type=content_type, now=NOON)

    assert headers["Authorization"] == botocore_authorization(
        credentials, method, f"https://{HOST}{PATH}", body, headers, NOON)
    assert headers.get("X-Amz-Security-Token") == credentials.token


def test_the_kept_signing_key_follows_the_date_and_a_rotated_secret():
    class Rotating:
        current = ROLE

        def get_frozen_credentials(self) -> Credentials:
            return self.current

    source = Rotating()
    signer = Signer(source, host=HOST, region="eu-west-3", service="execute-api")
    signer.headers("POST", PATH, BODY, content_type="application/json", now=NOON)
    next_day = NOON + 86_400
    source.current = Credentials("ASIAOTHERKEY", "rotated-secret", token="new-token")

    headers = signer.headers("POST", PATH, BODY, content_type="application/json", now=next_day)

    assert headers["Authorization"] == botocore_authorization(
        source.current, "POST", f"https://{HOST}{PATH}", BODY, headers, next_day)


def test_the_host_carries_the_port_only_when_it_is_not_the_schemes_default():
    assert host_header("https", HOST, None) == HOST
    assert host_header("https", HOST, 443) == HOST
    assert host_header("http", "127.0.0.1", 80) == "127.0.0.1"
    assert host_header("http", "127.0.0.1", 8000) == "127.0.0.1:8000"


def test_a_push_as_received_verifies_against_botocore(management_api, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "plain-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    management_api.live.add("L0SM9cOFvHcCIhw=")
    push = ApiGatewayPush(management_api.endpoint, policy=RetryPolicy(attempts=1))

    push.send("L0SM9cOFvHcCIhw=", {"type": "pong"})

    (call,) = management_api.calls_to("L0SM9cOFvHcCIhw=", "POST")
    received = dict(call.headers)
    signed_at = calendar.timegm(time.strptime(received["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    host = received["Host"]
    assert call.authorization == botocore_authorization(
        Credentials("AKIAEXAMPLEKEY", "plain-secret"), "POST", f"http://{host}{call.path}",
        call.body, {"Content-Type": received["Content-Type"],
                    "X-Amz-Date": received["X-Amz-Date"]}, signed_at)
