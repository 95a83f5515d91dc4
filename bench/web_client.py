"""The web client as a person feels it, in headless Chromium over the local stack (MariaDB):
page load, sign-in, the time from pressing Enter in one window to the message on screen in the
other, the page's JavaScript heap, and the size of what the browser downloads."""

from __future__ import annotations

import gzip
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.quick import sized
from bench.report import emit, latency_summary
from bench.stack import running_stack
from bench.storage import mysql_database
from chalicelib.config import parse_database_url
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from tests.e2e.web_client import WebUser, launch_chromium

MESSAGES = sized(200, 5)
DIST = Path(__file__).resolve().parent.parent / "web" / "dist"

# Stamps, on the page's own clock, the moment Enter goes down in the composer and the moment a
# message's body first appears in the list, by Date.now(): both windows share the machine's wall
# clock, while performance.timeOrigin differs between pages by seconds in Chromium.
STAMPS = """() => {
  window.__pressed = {}; window.__shown = {};
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.id === 'composer-text')
      window.__pressed[e.target.value] = Date.now();
  }, true);
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('[data-testid=message] [data-testid=body]')) {
      if (!(el.textContent in window.__shown)) window.__shown[el.textContent] = Date.now();
    }
  }).observe(document.body, { childList: true, subtree: true });
}"""


def measure(base_url: str) -> list[dict[str, Any]]:
    with contextmanager(launch_chromium)() as browser:
        alice = WebUser(browser.new_context(), base_url, "+14155550101")
        started = time.perf_counter()
        alice.page.goto(base_url)
        alice.page.get_by_label("Phone number", exact=True).wait_for()
        load_ms = (time.perf_counter() - started) * 1000
        alice.request_code()
        alice.page.get_by_role("button", name="Use it").click()
        started = time.perf_counter()
        alice.page.get_by_role("button", name="Sign in").click()
        alice.expect_connected()
        sign_in_ms = (time.perf_counter() - started) * 1000

        bob = WebUser(browser.new_context(), base_url, "+14155550102").sign_in()
        alice.start_chat(bob.phone)
        alice.send("hello")  # the other side learns of a chat with its first message
        bob.open_chat(alice.phone)
        for user in (alice, bob):
            user.page.evaluate(STAMPS)
        for i in range(MESSAGES):
            body = f"bench message {i:04d}"
            alice.send(body)
            bob.page.wait_for_function("(body) => body in window.__shown", arg=body, polling=20)
        pressed = alice.page.evaluate("() => window.__pressed")
        shown = bob.page.evaluate("() => window.__shown")
        to_screen = [shown[body] - pressed[body] for body in pressed]
        heap_mb = _heap_mb(bob)
        return [
            {"what": "page load to the login form", "value": f"{load_ms:.0f} ms"},
            {"what": "sign in: click to socket online", "value": f"{sign_in_ms:.0f} ms"},
            {"what": f"Enter in one window to on screen in the other, p50 / p99 (n={MESSAGES})",
             "value": _p50_p99(to_screen)},
            {"what": f"JS heap of the receiving page after {MESSAGES} messages",
             "value": f"{heap_mb:.1f} MB"},
            *_bundle_rows(),
        ]


def _heap_mb(user: WebUser) -> float:
    """Live JS heap after a full garbage collection, from the DevTools protocol."""
    session = user.context.new_cdp_session(user.page)
    session.send("HeapProfiler.collectGarbage")
    session.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in session.send("Performance.getMetrics")["metrics"]}
    return metrics["JSHeapUsedSize"] / 1e6


def _p50_p99(samples: list[float]) -> str:
    summary = latency_summary(samples)
    return f"{summary['p50_ms']:.1f} / {summary['p99_ms']:.1f} ms"


def _bundle_rows() -> list[dict[str, Any]]:
    rows = []
    for asset in sorted((DIST / "assets").iterdir()):
        data = asset.read_bytes()
        size_kb, gzipped_kb = len(data) / 1024, len(gzip.compress(data)) / 1024
        rows.append({"what": f"download: {asset.suffix[1:]} bundle",
                     "value": f"{size_kb:.0f} KB ({gzipped_kb:.0f} KB gzipped)"})
    return rows


def main() -> None:
    with mysql_database() as url:
        migrate(create_engine(parse_database_url(url)))
        with running_stack(url) as stack:  # every limit lifted: it times the path
            rows = measure(stack.base_url)
    emit("web client in headless Chromium over the local stack (MariaDB, 2 workers)", rows)


if __name__ == "__main__":
    main()
