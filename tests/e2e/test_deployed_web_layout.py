"""The web client as `make deploy` publishes it, in headless Chromium: the files
`publish_web_client` uploads, behind a stand-in for `infra/web.yaml`'s CloudFront distribution
(its headers policy and its `/api/*` behaviour read from the template), in front of the real
local stack. What differs from AWS: plain HTTP on 127.0.0.1, and the WebSocket is the local
stack's `ws://` one (its origin substituted for the template's `WebSocketOrigin`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Response, expect

from infra.deploy import API_STAGE, DeployedApis, publish_web_client, web_client_config
from tests.e2e.cloudfront_stand_in import CloudFrontStandIn, RecordingS3, WebTemplate
from tests.e2e.web_client import WebUser

ALICE, BOB = "+14155550131", "+14155550132"
BUCKET = "ephemera-dev-web-webbucket-stand-in"
REGION, STAGE = "us-east-1", "dev"
APIS = DeployedApis(rest_api_id="abc123", websocket_api_id="def456")
CONFIG_PREFIX, CONFIG_SUFFIX = "window.EPHEMERA_CONFIG = ", ";\n"
SYNC_WAIT_MS = 15_000


def deployed_config_script(web_url: str, ws_url: str) -> tuple[str, dict]:
    """`web_client_config` as `deploy` calls it, but with the local stack's socket: it can only
    name `wss://<id>.execute-api...` (from the API id), so its `wsUrl` is swapped for the
    stack's `ws://` one and the script written again in the same shape."""
    script = web_client_config(APIS, web_url, REGION, STAGE)
    assert script.startswith(CONFIG_PREFIX) and script.endswith(CONFIG_SUFFIX), script
    config = json.loads(script.removeprefix(CONFIG_PREFIX).removesuffix(CONFIG_SUFFIX))
    assert config["wsUrl"] == APIS.websocket_url(REGION)
    config["wsUrl"] = ws_url
    return f"{CONFIG_PREFIX}{json.dumps(config)}{CONFIG_SUFFIX}", config


@dataclass
class DeployedWeb:
    stand_in: CloudFrontStandIn
    config: dict
    template_headers: dict[str, str]  # what the template's headers policy sets
    websocket_origin: str

    @property
    def url(self) -> str:
        return self.stand_in.url


@pytest.fixture
def deploy_web(running_stack, stack) -> Iterator:
    """Publishes the built client the way `deploy` does and serves it from a stand-in
    distribution; `header_overrides` replaces headers of the template's policy."""
    template = WebTemplate()
    stand_ins: list[CloudFrontStandIn] = []
    websocket_origin = f"ws://127.0.0.1:{running_stack.port}"
    parameters = {"Stage": STAGE, "WebSocketOrigin": websocket_origin,
                  "RestApiDomain": f"{APIS.rest_api_id}.execute-api.{REGION}.amazonaws.com"}

    def deploy(header_overrides: dict[str, str] | None = None) -> DeployedWeb:
        s3 = RecordingS3()
        stand_in = CloudFrontStandIn(template, s3, BUCKET, running_stack.base_url, parameters,
                                     header_overrides).start()
        stand_ins.append(stand_in)
        script, config = deployed_config_script(stand_in.url, f"{websocket_origin}/ws")
        assert publish_web_client(s3, BUCKET, script) == len(s3.bucket(BUCKET))
        policy = template.default_behaviour.headers_policy
        assert policy is not None, "the default behaviour has no ResponseHeadersPolicy"
        return DeployedWeb(stand_in, config, template.security_headers(policy, parameters),
                           websocket_origin)

    yield deploy
    for stand_in in stand_ins:
        stand_in.stop()


class DeployedWindow(WebUser):
    """A person's window on the deployed page, recording what the browser fetched and every
    console error and script error (a CSP violation is a console error)."""

    def __init__(self, browser: Browser, web: DeployedWeb, phone: str) -> None:
        self.console_errors: list[str] = []  # kept by `_on_console`, which WebUser hooks up
        super().__init__(browser.new_context(), web.url, phone)
        self.fetched: list[tuple[str, str]] = []  # (method, url), not the WebSocket
        self.sockets: list[str] = []
        self.responses: dict[str, Response] = {}
        self.page.on("request", lambda request: self.fetched.append((request.method,
                                                                      request.url)))
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


def test_the_deployed_page_signs_in_and_chats_under_the_templates_csp(
        deploy_web, open_deployed_window, stack, running_stack):
    web = deploy_web()
    alice = open_deployed_window(web, ALICE).sign_in_with_code_from(stack)
    alice.expect_connected()
    bob = open_deployed_window(web, BOB).sign_in_with_code_from(stack)
    bob.expect_connected()

    alice.start_chat(BOB)
    alice.send("hello through the distribution")
    expect(alice.bodies).to_have_text(["hello through the distribution"], timeout=SYNC_WAIT_MS)
    expect(bob.conversation(ALICE)).to_contain_text("hello through the distribution",
                                                    timeout=SYNC_WAIT_MS)  # live, by socket
    bob.accept_request(ALICE)
    expect(bob.bodies).to_have_text(["hello through the distribution"])
    bob.send("and back")
    expect(alice.bodies).to_have_text(["hello through the distribution", "and back"],
                                      timeout=SYNC_WAIT_MS)

    for window in (alice, bob):
        # the page came with the template's headers, the CSP among them
        assert "connect-src 'self' " + web.websocket_origin in \
            web.template_headers["Content-Security-Policy"]
        page_headers = window.responses[web.url + "/"].all_headers()
        for name, value in web.template_headers.items():
            assert page_headers.get(name.lower()) == value, (name, page_headers)
        assert page_headers["cache-control"] == "no-cache"

        # ... and loaded /config.js, from which the app took its REST base
        config_js = window.responses[web.url + "/config.js"]
        assert config_js.status == 200
        assert config_js.all_headers()["content-type"].startswith("text/javascript")
        assert window.page.evaluate("() => window.EPHEMERA_CONFIG") == web.config
        assert web.config["apiBaseUrl"] == f"{web.url}/{API_STAGE}"

        # every HTTP request went to the distribution, the REST calls under /api; only the
        # WebSocket went to the stack (the ticket's address)
        assert {urlsplit(url).netloc for _, url in window.fetched} == {urlsplit(web.url).netloc}
        rest_calls = {(method, urlsplit(url).path) for method, url in window.fetched
                      if urlsplit(url).path.startswith(f"/{API_STAGE}/")}
        assert {("POST", "/api/auth/otp"), ("POST", "/api/auth/verify"),
                ("POST", "/api/ws/ticket")} <= rest_calls, rest_calls
        assert window.sockets and all(socket.startswith(f"{web.websocket_origin}/ws?ticket=")
                                      for socket in window.sockets), window.sockets

        assert window.console_errors == [], window.console_errors
        assert window.page_errors == [], window.page_errors

    # the distribution handed the stack the routes without the stage, as API Gateway would
    assert {("POST", "/auth/otp"), ("POST", "/auth/verify"), ("POST", "/ws/ticket"),
            ("POST", "/conversations")} <= set(web.stand_in.forwarded)
    assert not any(path.startswith(f"/{API_STAGE}/") for _, path in web.stand_in.forwarded)
    # the built assets are cached for good, and the page's CSP covers them too
    assets = [url for url in alice.responses if urlsplit(url).path.startswith("/assets/")]
    assert assets
    for url in assets:
        headers = alice.responses[url].all_headers()
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert headers["content-security-policy"] == web.template_headers[
            "Content-Security-Policy"]


def test_a_csp_without_the_websocket_origin_keeps_the_socket_out(
        deploy_web, open_deployed_window, stack):
    as_deployed = deploy_web()
    template_csp = as_deployed.template_headers["Content-Security-Policy"]
    stricter = template_csp.replace(f" {as_deployed.websocket_origin}", "")
    assert stricter != template_csp and "connect-src 'self';" in stricter, stricter
    web = deploy_web({"Content-Security-Policy": stricter})

    alice = open_deployed_window(web, ALICE).sign_in_with_code_from(stack)
    # REST on the page's own origin still works: she gets past the code and asks for a ticket
    expect(alice.page.get_by_role("form", name="Enter code")).to_have_count(0)
    refused = _wait_for(alice, lambda: [error for error in alice.console_errors
                                        if _is_refused_connection(error)])
    assert f"{web.websocket_origin}/ws?ticket=" in refused[0], refused
    assert "connect-src 'self'\"" in refused[0], refused
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
