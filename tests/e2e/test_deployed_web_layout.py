"""The web client as `make deploy` publishes it, in headless Chromium: the files
`publish_web_client` uploads, behind a stand-in for `infra/web.yaml`'s CloudFront distribution
(its behaviours and headers policy read from the template), calling the real local stack
directly, cross-origin, as the deployed page calls API Gateway: CORS preflights happen for real,
and the stack sees the browser's own address (it takes `sourceIp` from the connection, as API
Gateway does). What differs from AWS: plain HTTP on 127.0.0.1, and the APIs are the local
stack's `http://` and `ws://` origins, substituted for the template's `RestApiOrigin` and
`WebSocketOrigin` and for the addresses in `config.js`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Request, Response, expect

from infra.deploy import API_STAGE, DeployedApis, publish_web_client, web_client_config
from tests.e2e.cloudfront_stand_in import CloudFrontStandIn, RecordingS3, WebTemplate
from tests.e2e.web_client import WebUser

ALICE, BOB = "+14155550131", "+14155550132"
BUCKET = "ephemera-dev-web-webbucket-stand-in"
REGION, STAGE = "us-east-1", "dev"
APIS = DeployedApis(rest_api_id="abc123", websocket_api_id="def456")
CONFIG_PREFIX, CONFIG_SUFFIX = "window.EPHEMERA_CONFIG = ", ";\n"
SYNC_WAIT_MS = 15_000


def deployed_config_script(api_base_url: str, ws_url: str) -> tuple[str, dict]:
    """`web_client_config` as `deploy` calls it, with the local stack's addresses: it can only
    name `https://<id>.execute-api...` and `wss://<id>.execute-api...` (from the API ids), so
    `apiBaseUrl` and `wsUrl` are swapped for the stack's and the script written again in the
    same shape."""
    script = web_client_config(APIS, REGION, STAGE)
    assert script.startswith(CONFIG_PREFIX) and script.endswith(CONFIG_SUFFIX), script
    config = json.loads(script.removeprefix(CONFIG_PREFIX).removesuffix(CONFIG_SUFFIX))
    # The API Gateway addresses, under the origins `publish_web` gives the template's CSP.
    assert config["apiBaseUrl"] == f"{APIS.rest_origin(REGION)}/{API_STAGE}", config
    assert config["wsUrl"] == f"{APIS.websocket_origin(REGION)}/{API_STAGE}", config
    config["apiBaseUrl"], config["wsUrl"] = api_base_url, ws_url
    return f"{CONFIG_PREFIX}{json.dumps(config)}{CONFIG_SUFFIX}", config


@dataclass
class DeployedWeb:
    stand_in: CloudFrontStandIn
    s3: RecordingS3
    config: dict
    template_headers: dict[str, str]  # what the template's headers policy sets
    rest_origin: str  # the stack's, as the template's RestApiOrigin
    websocket_origin: str  # the stack's, as the template's WebSocketOrigin

    @property
    def url(self) -> str:
        return self.stand_in.url

    def bucket_paths(self) -> set[str]:
        """The paths the distribution serves from the bucket: its keys, and `/` for the index."""
        return {"/"} | {f"/{key}" for key in self.s3.bucket(BUCKET)}


@pytest.fixture
def deploy_web(running_stack, stack) -> Iterator:
    """Publishes the built client the way `deploy` does and serves it from a stand-in
    distribution; `header_overrides` replaces headers of the template's policy."""
    template = WebTemplate()
    stand_ins: list[CloudFrontStandIn] = []
    # The stack answers on `/<route>` as API Gateway's stage `api` answers on `/api/<route>`.
    rest_origin = running_stack.base_url
    websocket_origin = f"ws://127.0.0.1:{running_stack.port}"
    parameters = {"Stage": STAGE, "RestApiOrigin": rest_origin,
                  "WebSocketOrigin": websocket_origin}

    def deploy(header_overrides: dict[str, str] | None = None) -> DeployedWeb:
        s3 = RecordingS3()
        stand_in = CloudFrontStandIn(template, s3, BUCKET, parameters, header_overrides).start()
        stand_ins.append(stand_in)
        assert urlsplit(stand_in.url).netloc != urlsplit(rest_origin).netloc  # cross-origin
        script, config = deployed_config_script(rest_origin, f"{websocket_origin}/ws")
        assert publish_web_client(s3, BUCKET, script) == len(s3.bucket(BUCKET))
        policy = template.default_behaviour.headers_policy
        assert policy is not None, "the default behaviour has no ResponseHeadersPolicy"
        return DeployedWeb(stand_in, s3, config, template.security_headers(policy, parameters),
                           rest_origin, websocket_origin)

    yield deploy
    for stand_in in stand_ins:
        stand_in.stop()


class DeployedWindow(WebUser):
    """A person's window on the deployed page, recording what the browser fetched and every
    console error and script error (a CSP violation is a console error)."""

    def __init__(self, browser: Browser, web: DeployedWeb, phone: str) -> None:
        self.console_errors: list[str] = []  # kept by `_on_console`, which WebUser hooks up
        super().__init__(browser.new_context(), web.url, phone)
        self.fetched: list[Request] = []  # not the WebSocket, not CORS preflights
        self.sockets: list[str] = []
        self.responses: dict[str, Response] = {}
        self.page.on("request", lambda request: self.fetched.append(request))
        self.page.on("websocket", lambda socket: self.sockets.append(socket.url))
        self.page.on("response", lambda response: self.responses.setdefault(response.url,
                                                                             response))

    def _on_console(self, message) -> None:
        if message.type == "error":  # every one, not only CSP reports
            self.console_errors.append(message.text)

    def sign_in_with_code_from(self, stack) -> DeployedWindow:
        """No dev code on screen off the local stage: the code is read from the SMS outbox."""
        self.request_code()
        expect(self.page.get_by_test_id("dev-code")).to_have_count(0)
        self.page.get_by_label("Code", exact=True).fill(stack.outbox(self.phone)[0]["code"])
        self.page.get_by_role("button", name="Sign in").click()
        return self

    def ask_for_a_code(self) -> None:
        """What `request_code` does, without expecting the server to have answered."""
        self.page.goto(self.base_url)
        self.page.get_by_label("Phone number", exact=True).fill(self.phone)
        self.page.get_by_role("button", name="Send code").click()


@pytest.fixture
def open_deployed_window(browser) -> Iterator:
    windows: list[DeployedWindow] = []

    def open_for(web: DeployedWeb, phone: str) -> DeployedWindow:
        window = DeployedWindow(browser, web, phone)
        windows.append(window)
        return window

    yield open_for
    for window in windows:
        window.context.close()


def _preflights(log: str) -> set[str]:
    """The paths the stack answered an OPTIONS request on (its access log lines)."""
    return {line.split("http OPTIONS ", 1)[1].split(" ", 1)[0]
            for line in log.splitlines() if "http OPTIONS " in line and "-> 200" in line}


def test_the_deployed_page_calls_the_api_directly_and_chats_under_the_templates_csp(
        deploy_web, open_deployed_window, stack, running_stack):
    log_start = len(running_stack.output())
    web = deploy_web()
    alice = open_deployed_window(web, ALICE).sign_in_with_code_from(stack)
    alice.expect_connected()
    bob = open_deployed_window(web, BOB).sign_in_with_code_from(stack)
    bob.expect_connected()

    alice.start_chat(BOB)
    alice.send("hello, straight to the API")
    expect(alice.bodies).to_have_text(["hello, straight to the API"], timeout=SYNC_WAIT_MS)
    expect(bob.conversation(ALICE)).to_contain_text("hello, straight to the API",
                                                    timeout=SYNC_WAIT_MS)  # live, by socket
    bob.accept_request(ALICE)
    expect(bob.bodies).to_have_text(["hello, straight to the API"])
    bob.send("and back")
    expect(alice.bodies).to_have_text(["hello, straight to the API", "and back"],
                                      timeout=SYNC_WAIT_MS)

    csp = web.template_headers["Content-Security-Policy"]
    assert f"connect-src 'self' {web.rest_origin} {web.websocket_origin};" in csp, csp
    page_origin, rest_netloc = web.url, urlsplit(web.rest_origin).netloc
    for window in (alice, bob):
        # the page came with the template's headers, the CSP among them
        page_headers = window.responses[web.url + "/"].all_headers()
        for name, value in web.template_headers.items():
            assert page_headers.get(name.lower()) == value, (name, page_headers)
        assert page_headers["cache-control"] == "no-cache"

        # ... and loaded /config.js, from which the app took the APIs' addresses
        config_js = window.responses[web.url + "/config.js"]
        assert config_js.status == 200
        assert config_js.all_headers()["content-type"].startswith("text/javascript")
        assert window.page.evaluate("() => window.EPHEMERA_CONFIG") == web.config

        # The browser fetched only static files from the distribution and called the REST API
        # at the API's own origin, cross-origin: with the page's Origin, answered with CORS.
        on_page = [r for r in window.fetched if urlsplit(r.url).netloc == urlsplit(web.url).netloc]
        rest = [r for r in window.fetched if urlsplit(r.url).netloc == rest_netloc]
        assert len(on_page) + len(rest) == len(window.fetched), [r.url for r in window.fetched]
        assert all(r.method == "GET" and urlsplit(r.url).path in web.bucket_paths()
                   for r in on_page), [(r.method, r.url) for r in on_page]
        rest_calls = {(r.method, urlsplit(r.url).path) for r in rest}
        assert {("POST", "/auth/otp"), ("POST", "/auth/verify"),
                ("POST", "/ws/ticket")} <= rest_calls, rest_calls
        for request in rest:
            assert request.all_headers().get("origin") == page_origin, request.url
            response = request.response()
            assert response is not None and response.ok, (request.url, response)
            assert response.all_headers().get("access-control-allow-origin") == "*", (
                request.url, response.all_headers())
        assert window.sockets and all(socket.startswith(f"{web.websocket_origin}/ws?ticket=")
                                      for socket in window.sockets), window.sockets

        assert window.console_errors == [], window.console_errors
        assert window.page_errors == [], window.page_errors

    # The distribution answered nothing but the bucket's files: no API call went through it, so
    # the stack took its source address from the browser's own connection.
    served = web.stand_in.served
    assert served and all(s.method == "GET" and s.status == 200 and s.path in web.bucket_paths()
                          for s in served), served
    # Content-Type JSON and Authorization are not "simple": each call was preflighted, and the
    # stack (Chalice's CORS, as API Gateway's OPTIONS method) allowed it.
    preflighted = _preflights(running_stack.output()[log_start:])
    assert {"/auth/otp", "/auth/verify", "/ws/ticket", "/conversations"} <= preflighted, \
        preflighted

    # the built assets are cached for good, and the page's CSP covers them too
    assets = [url for url in alice.responses if urlsplit(url).path.startswith("/assets/")]
    assert assets
    for url in assets:
        headers = alice.responses[url].all_headers()
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert headers["content-security-policy"] == csp


def test_a_csp_without_the_rest_origin_keeps_the_page_from_signing_in(
        deploy_web, open_deployed_window, stack, running_stack):
    """The REST origin in connect-src is what lets the page reach the API: without it (the
    same-origin layout's `connect-src 'self'`), the browser refuses the very first call."""
    log_start = len(running_stack.output())
    as_deployed = deploy_web()
    template_csp = as_deployed.template_headers["Content-Security-Policy"]
    self_only = template_csp.replace(
        f" {as_deployed.rest_origin} {as_deployed.websocket_origin};", ";")
    assert self_only != template_csp and "connect-src 'self';" in self_only, self_only
    web = deploy_web({"Content-Security-Policy": self_only})

    alice = open_deployed_window(web, ALICE)
    alice.ask_for_a_code()
    refused = _wait_for(alice, lambda: [error for error in alice.console_errors
                                        if _is_refused_connection(error)])
    assert f"{web.rest_origin}/auth/otp" in refused[0], refused
    assert "connect-src 'self'\"" in refused[0], refused
    assert alice.responses[web.url + "/"].all_headers()["content-security-policy"] == self_only
    # no code was sent, so there is nothing to sign in with: the page stays on the phone form
    expect(alice.page.get_by_role("form", name="Enter code")).to_have_count(0)
    expect(alice.page.get_by_label("Phone number", exact=True)).to_be_visible()
    assert stack.outbox(ALICE) == []
    assert "/auth/otp" not in running_stack.output()[log_start:]
    assert all(s.path in web.bucket_paths() for s in web.stand_in.served), web.stand_in.served


def test_a_csp_without_the_websocket_origin_keeps_the_socket_out(
        deploy_web, open_deployed_window, stack):
    """The WebSocket origin is needed as well: REST alone signs in, but no socket opens."""
    as_deployed = deploy_web()
    template_csp = as_deployed.template_headers["Content-Security-Policy"]
    stricter = template_csp.replace(f" {as_deployed.websocket_origin};", ";")
    assert stricter != template_csp, stricter
    assert f"connect-src 'self' {as_deployed.rest_origin};" in stricter, stricter
    web = deploy_web({"Content-Security-Policy": stricter})

    alice = open_deployed_window(web, ALICE).sign_in_with_code_from(stack)
    # REST on its origin still works: she gets past the code and asks for a ticket
    expect(alice.page.get_by_role("form", name="Enter code")).to_have_count(0)
    refused = _wait_for(alice, lambda: [error for error in alice.console_errors
                                        if _is_refused_connection(error)])
    assert f"{web.websocket_origin}/ws?ticket=" in refused[0], refused
    assert f"connect-src 'self' {web.rest_origin}\"" in refused[0], refused
    expect(alice.page.get_by_test_id("connection-status")).not_to_have_text("online")
    assert alice.responses[web.url + "/"].all_headers()["content-security-policy"] == stricter


def _is_refused_connection(console_error: str) -> bool:
    """Chromium's report of a connection its CSP blocked: "Refused to connect to '<url>'
    because it violates ..." in older versions, "Connecting to '<url>' violates the following
    Content Security Policy directive: ... The action has been blocked." in newer ones."""
    return console_error.startswith(("Refused to connect", "Connecting to ")) and \
        "violates the following Content Security Policy directive" in console_error


def _wait_for(window: WebUser, probe, timeout_s: float = 10) -> list:
    """Polls `probe` while the browser's events keep arriving (they do only inside a call)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        window.page.wait_for_timeout(100)
    raise AssertionError(f"nothing after {timeout_s}s; console errors "
                         f"{window.console_errors}, page errors {window.page_errors}")
