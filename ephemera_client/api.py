"""The REST half of the protocol over aiohttp: sign-in with a texted code, tokens refreshed one
at a time, and one method per route. Every failure is a `ClientError` (errors.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from ephemera_client.errors import ApiError, SignedOut, Unreachable
from ephemera_client.session import Credentials, MemorySession, SessionStore

REQUEST_TIMEOUT_S = 15
REFRESH_MARGIN_S = 30  # refresh an access token this close to its expiry before using it
OUTBOX_WAIT_S = 10

# Asked for the code texted to a phone; returns it.
CodeSource = Callable[[str], Awaitable[str]]


class Api:
    """One server's REST routes for one session (`session` holds the tokens, refreshed here)."""

    def __init__(self, url: str, *, session: SessionStore | None = None,
                 http: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self.session = session or MemorySession()
        self._http = http
        self._owns_http = http is None
        self._refreshing = asyncio.Lock()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        return self._http

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None

    # --- the raw call ---------------------------------------------------------------------

    async def call(self, method: str, path: str, body: Any = None, *,
                   auth: bool = True) -> Any:
        """One request; the reply's JSON (None for 204). A 401 on an authenticated route is
        retried once after a refresh: the access token may have expired in flight."""
        if not auth:
            return await self._send(method, path, body, token=None)
        token = await self.access_token()
        try:
            return await self._send(method, path, body, token=token)
        except ApiError as error:
            if error.status != 401:
                raise
        return await self._send(method, path, body, token=await self.refresh(token))

    async def _send(self, method: str, path: str, body: Any, *, token: str | None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self.http.request(method, self.url + path, data=data,
                                         headers=headers) as reply:
                text = await reply.text()
                retry_after = reply.headers.get("Retry-After")
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Unreachable(f"{self.url} did not answer ({type(error).__name__})") from None
        parsed = _json_or_none(text)
        if status < 400:
            return parsed
        detail = parsed.get("error") if isinstance(parsed, dict) else None
        if not isinstance(detail, dict):
            detail = {"code": "internal" if status >= 500 else "bad_request",
                      "message": f"HTTP {status}"}
        extra = {k: v for k, v in detail.items() if k not in ("code", "message")}
        raise ApiError(str(detail.get("code")), str(detail.get("message", "")), status=status,
                       details=extra, retry_after_s=float(retry_after) if retry_after else None)

    # --- tokens ---------------------------------------------------------------------------

    def credentials(self) -> Credentials:
        credentials = self.session.load()
        if credentials is None:
            raise SignedOut("not signed in: run `ephemera login`")
        return credentials

    async def access_token(self) -> str:
        credentials = self.credentials()
        if credentials.access_expires_at - time.time() > REFRESH_MARGIN_S:
            return credentials.access_token
        return await self.refresh(credentials.access_token)

    async def refresh(self, stale_token: str) -> str:
        """A fresh access token, refreshing at most once at a time: in this process under an
        asyncio lock, across processes under the session's file lock. Whoever finds that
        someone else refreshed meanwhile adopts their tokens (a rotated refresh token presented
        again would revoke the device)."""
        async with self._refreshing:
            lock = self.session.locked()
            await asyncio.to_thread(lock.__enter__)
            try:
                credentials = self.credentials()
                fresh_enough = credentials.access_expires_at - time.time() > REFRESH_MARGIN_S
                if credentials.access_token != stale_token and fresh_enough:
                    return credentials.access_token
                try:
                    reply = await self._send("POST", "/auth/refresh",
                                             {"refresh_token": credentials.refresh_token},
                                             token=None)
                except ApiError as error:
                    if error.status in (400, 401, 403):
                        self.session.save(None)
                        raise SignedOut("the server refused to refresh this session "
                                        f"({error.code}): sign in again") from None
                    raise
                self.session.save(_adopt(credentials, reply))
                return reply["access_token"]
            finally:
                lock.__exit__(None, None, None)

    # --- signing in and out -----------------------------------------------------------------

    async def request_code(self, phone: str) -> dict[str, Any]:
        return await self.call("POST", "/auth/otp", {"phone": phone}, auth=False)

    async def verify(self, challenge_id: str, code: str, device_name: str) -> Credentials:
        reply = await self.call("POST", "/auth/verify", {
            "challenge_id": challenge_id, "code": code, "device_name": device_name}, auth=False)
        credentials = Credentials(
            url=self.url, user_id=reply["user"]["id"], phone=reply["user"]["phone"],
            device_id=reply["device_id"], access_token=reply["access_token"],
            refresh_token=reply["refresh_token"],
            access_expires_at=time.time() + reply["expires_in"])
        self.session.save(credentials)
        return credentials

    async def login(self, phone: str, code_source: CodeSource,
                    device_name: str = "ephemera-cli") -> Credentials:
        challenge = await self.request_code(phone)
        code = (await code_source(phone)).strip()
        return await self.verify(challenge["challenge_id"], code, device_name)

    async def logout(self) -> None:
        """Revokes this device on the server (its sockets close) and forgets the session."""
        try:
            await self.call("POST", "/auth/logout")
        except SignedOut:
            pass
        finally:
            self.session.save(None)

    # --- the routes -----------------------------------------------------------------------

    async def me(self) -> dict[str, Any]:
        return await self.call("GET", "/me")

    async def update_me(self, **changes: Any) -> dict[str, Any]:
        return await self.call("PATCH", "/me", changes)

    async def ticket(self) -> dict[str, Any]:
        return await self.call("POST", "/ws/ticket")

    async def conversations(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Every conversation, newest activity first, following `next_cursor` to the end (or
        the first `limit` of them)."""
        listed: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {"limit": str(min(limit or 200, 200))}
            if cursor:
                query["cursor"] = cursor
            page = await self.call("GET", f"/conversations?{urlencode(query)}")
            listed += page["conversations"]
            cursor = page.get("next_cursor")
            if not cursor or (limit is not None and len(listed) >= limit):
                return listed[:limit] if limit is not None else listed

    async def create_conversation(self, members: list[str], *, title: str | None = None,
                                  ttl_seconds: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"members": members}
        if title is not None:
            body["title"] = title
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        return await self.call("POST", "/conversations", body)

    async def update_conversation(self, conversation_id: str, **changes: Any) -> dict[str, Any]:
        return await self.call("PATCH", f"/conversations/{_id(conversation_id)}", changes)

    async def history(self, conversation_id: str, *, after_seq: int | None = None,
                      before_seq: int | None = None, limit: int = 50) -> dict[str, Any]:
        query: dict[str, str] = {"limit": str(limit)}
        if after_seq is not None:
            query["after_seq"] = str(after_seq)
        if before_seq is not None:
            query["before_seq"] = str(before_seq)
        return await self.call(
            "GET", f"/conversations/{_id(conversation_id)}/messages?{urlencode(query)}")

    async def accept(self, conversation_id: str) -> Any:
        return await self.call("POST", f"/conversations/{_id(conversation_id)}/accept")

    async def decline(self, conversation_id: str, *, block: bool = False) -> None:
        await self.call("POST", f"/conversations/{_id(conversation_id)}/decline",
                        {"block": block})

    async def add_members(self, conversation_id: str, phones: list[str]) -> dict[str, Any]:
        return await self.call("POST", f"/conversations/{_id(conversation_id)}/members",
                               {"members": phones})

    async def remove_member(self, conversation_id: str, user_id: str) -> None:
        await self.call("DELETE",
                        f"/conversations/{_id(conversation_id)}/members/{_id(user_id)}")

    async def set_role(self, conversation_id: str, user_id: str, role: str) -> dict[str, Any]:
        return await self.call(
            "PATCH", f"/conversations/{_id(conversation_id)}/members/{_id(user_id)}",
            {"role": role})

    async def devices(self) -> list[dict[str, Any]]:
        return (await self.call("GET", "/devices"))["devices"]

    async def revoke_device(self, device_id: str) -> None:
        await self.call("DELETE", f"/devices/{_id(device_id)}")

    async def blocks(self) -> list[dict[str, Any]]:
        return (await self.call("GET", "/blocks"))["blocks"]

    async def block(self, user_id: str) -> Any:
        return await self.call("POST", "/blocks", {"user_id": user_id})

    async def unblock(self, user_id: str) -> None:
        await self.call("DELETE", f"/blocks/{_id(user_id)}")

    async def export(self) -> dict[str, Any]:
        return await self.call("GET", "/me/export")

    async def delete_account(self, code_source: CodeSource) -> None:
        """Deletes the account for good, with a code texted to its phone (as for login)."""
        phone = self.credentials().phone
        challenge = await self.call("POST", "/me/delete-challenge")
        code = (await code_source(phone)).strip()
        await self.call("DELETE", "/me", {"challenge_id": challenge["challenge_id"],
                                           "code": code})
        self.session.save(None)

    async def dev_outbox(self, phone: str) -> list[dict[str, Any]]:
        """What the local stage's console SMS sender "sent" to a phone, newest first."""
        reply = await self.call("GET", f"/dev/outbox?phone={quote(phone)}", auth=False)
        return reply["messages"]


# --- where a code comes from -------------------------------------------------------------


def outbox_codes(api: Api) -> CodeSource:
    """Codes read from the local stage's `/dev/outbox` (no phone needed): the newest text sent
    to the phone after this was asked for."""

    async def read(phone: str) -> str:
        asked_at_ms = (time.time() - 2) * 1000  # the server's clock may be a little behind
        deadline = time.monotonic() + OUTBOX_WAIT_S
        while True:
            try:
                texts = await api.dev_outbox(phone)
            except ApiError as error:
                if error.status == 404:
                    raise ApiError("not_found", "this server has no /dev/outbox (only the local "
                                   "stage has): use --code-command or type the code",
                                   status=404) from None
                raise
            fresh = [text for text in texts if text.get("sent_at", 0) >= asked_at_ms]
            if fresh:
                return str(fresh[0]["code"])
            if time.monotonic() > deadline:
                raise ApiError("not_found", f"no code reached the outbox for {phone}")
            await asyncio.sleep(0.1)

    return read


def command_codes(command: str) -> CodeSource:
    """Codes printed by a shell command (`--code-command`); the phone is its last argument and
    in `EPHEMERA_PHONE`."""

    async def run(phone: str) -> str:
        process = await asyncio.create_subprocess_shell(
            f"{command} {shlex.quote(phone)}", stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "EPHEMERA_PHONE": phone})
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise ApiError("bad_request", f"the code command exited with {process.returncode}")
        return output.decode().strip()

    return run


def prompted_codes(ask: Callable[[str], str] = input) -> CodeSource:
    """Codes typed by a person at a prompt."""

    async def prompt(phone: str) -> str:
        return await asyncio.to_thread(ask, f"Code texted to {phone}: ")

    return prompt


def _adopt(credentials: Credentials, reply: dict[str, Any]) -> Credentials:
    credentials.access_token = reply["access_token"]
    credentials.refresh_token = reply["refresh_token"]
    credentials.access_expires_at = time.time() + reply["expires_in"]
    return credentials


def _id(value: str) -> str:
    return quote(value, safe="")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
