"""A stand-in for the CloudFront distribution of `infra/web.yaml`, read from the template itself:
the bucket's objects (as `infra.deploy.publish_web_client` uploads them) on the template's
behaviours, with the ResponseHeadersPolicy's headers and each behaviour's allowed methods. A
change to the template's headers or behaviours is a change to what this serves. The template
forwards nothing to the APIs (the page calls them directly, so API Gateway sees the user's own
address); a behaviour with any origin but the bucket makes this stand-in refuse to start."""

from __future__ import annotations

import asyncio
import fnmatch
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cfnlint.decode.cfn_yaml import load

from infra.deploy import WEB_TEMPLATE


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    content_type: str
    cache_control: str


class RecordingS3:
    """The one S3 call `publish_web_client` makes, recorded per bucket and key."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], StoredObject] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str,
                   CacheControl: str) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = StoredObject(bytes(Body), ContentType, CacheControl)
        return {}

    def bucket(self, name: str) -> dict[str, StoredObject]:
        return {key: stored for (bucket, key), stored in self.objects.items() if bucket == name}


def _sub(value: Any, parameters: dict[str, str]) -> str:
    """A plain string, or an `Fn::Sub` of the given parameters (anything else left is an error:
    the stand-in must not silently serve a header the template would not)."""
    if isinstance(value, str):
        return value
    (function, template), = value.items()
    assert function == "Fn::Sub" and isinstance(template, str), value

    def parameter(match: re.Match) -> str:
        name = match.group(1)
        assert name in parameters, f"the template substitutes ${{{name}}}, not given"
        return parameters[name]

    return re.sub(r"\$\{([^}!]+)\}", parameter, template)


@dataclass(frozen=True)
class Behaviour:
    path_pattern: str | None  # None: the default behaviour
    origin_id: str
    allowed_methods: tuple[str, ...]
    headers_policy: str | None  # the logical id of its ResponseHeadersPolicy


class WebTemplate:
    """What `infra/web.yaml` says the distribution does."""

    def __init__(self, path: Path = WEB_TEMPLATE) -> None:
        self.template = load(str(path))
        self.resources = self.template["Resources"]
        distribution = self.resources["Distribution"]["Properties"]["DistributionConfig"]
        self.default_root_object: str = distribution["DefaultRootObject"]
        self.origins = {origin["Id"]: origin for origin in distribution["Origins"]}
        self.behaviours = [self._behaviour(b) for b in distribution.get("CacheBehaviors", [])]
        self.default_behaviour = self._behaviour(distribution["DefaultCacheBehavior"])

    @staticmethod
    def _behaviour(raw: dict[str, Any]) -> Behaviour:
        policy = raw.get("ResponseHeadersPolicyId")
        return Behaviour(raw.get("PathPattern"), raw["TargetOriginId"],
                         tuple(raw["AllowedMethods"]),
                         policy["Ref"] if isinstance(policy, dict) else policy)

    def behaviour_for(self, path: str) -> Behaviour:
        """CloudFront's choice: the first path pattern that matches, else the default."""
        for behaviour in self.behaviours:
            if fnmatch.fnmatchcase(path, behaviour.path_pattern or ""):
                return behaviour
        return self.default_behaviour

    def is_bucket(self, behaviour: Behaviour) -> bool:
        return "S3OriginConfig" in self.origins[behaviour.origin_id]

    def all_behaviours(self) -> list[Behaviour]:
        return [*self.behaviours, self.default_behaviour]

    def security_headers(self, policy_id: str, parameters: dict[str, str]) -> dict[str, str]:
        """The response headers the ResponseHeadersPolicy `policy_id` sets."""
        return {name: value for name, (value, _) in
                self.security_header_overrides(policy_id, parameters).items()}

    def security_header_overrides(self, policy_id: str,
                                  parameters: dict[str, str]) -> dict[str, tuple[str, bool]]:
        """Each header of the policy with its Override flag: (value, override)."""
        policy = self.resources[policy_id]
        assert policy["Type"] == "AWS::CloudFront::ResponseHeadersPolicy", policy_id
        config = policy["Properties"]["ResponseHeadersPolicyConfig"]
        security = config.get("SecurityHeadersConfig", {})
        headers: dict[str, tuple[str, bool]] = {}
        if "ContentSecurityPolicy" in security:
            csp = security["ContentSecurityPolicy"]
            headers["Content-Security-Policy"] = (
                _sub(csp["ContentSecurityPolicy"], parameters), csp["Override"])
        if "ContentTypeOptions" in security:
            headers["X-Content-Type-Options"] = (
                "nosniff", security["ContentTypeOptions"]["Override"])
        if "FrameOptions" in security:
            frame = security["FrameOptions"]
            headers["X-Frame-Options"] = (frame["FrameOption"], frame["Override"])
        if "ReferrerPolicy" in security:
            referrer = security["ReferrerPolicy"]
            headers["Referrer-Policy"] = (referrer["ReferrerPolicy"], referrer["Override"])
        if "StrictTransportSecurity" in security:
            hsts = security["StrictTransportSecurity"]
            value = f"max-age={hsts['AccessControlMaxAgeSec']}"
            if hsts.get("IncludeSubdomains"):
                value += "; includeSubDomains"
            if hsts.get("Preload"):
                value += "; preload"
            headers["Strict-Transport-Security"] = (value, hsts["Override"])
        if "XSSProtection" in security:
            xss = security["XSSProtection"]
            value = "1" if xss["Protection"] else "0"
            if xss.get("ModeBlock"):
                value += "; mode=block"
            elif xss.get("ReportUri"):
                value += f"; report={xss['ReportUri']}"
            headers["X-XSS-Protection"] = (value, xss["Override"])
        for custom in config.get("CustomHeadersConfig", {}).get("Items", []):
            headers[custom["Header"]] = (_sub(custom["Value"], parameters), custom["Override"])
        return headers


@dataclass(frozen=True)
class Served:
    """One request the stand-in answered."""

    method: str
    path: str
    status: int


class CloudFrontStandIn:
    """The distribution on 127.0.0.1 (plain HTTP), in a thread of its own, serving the objects
    uploaded to `bucket` of `s3` (read at each request), and recording every request."""

    def __init__(self, template: WebTemplate, s3: RecordingS3, bucket: str,
                 parameters: dict[str, str],
                 header_overrides: dict[str, str] | None = None) -> None:
        elsewhere = [b for b in template.all_behaviours() if not template.is_bucket(b)]
        assert not elsewhere, (
            f"the template forwards {elsewhere} to an origin other than the bucket: this "
            "stand-in serves the bucket only (and the APIs must see the user's own address)")
        self.template = template
        self.s3 = s3
        self.bucket = bucket
        self.parameters = parameters
        self.header_overrides = header_overrides or {}
        self.served: list[Served] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- life -----------------------------------------------------------------------------

    def start(self) -> CloudFrontStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(application)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- requests -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        behaviour = self.template.behaviour_for(request.path)
        if request.method not in behaviour.allowed_methods:
            response = web.Response(status=403, text="method not allowed")
        else:
            response = self._from_bucket(request)
        self._apply_headers_policy(response, behaviour)
        self.served.append(Served(request.method, request.path, response.status))
        return response

    def _from_bucket(self, request: web.Request) -> web.Response:
        key = request.path.lstrip("/") or self.template.default_root_object
        stored = self.s3.objects.get((self.bucket, key))
        if stored is None:  # a private bucket read through OAC: a missing key is AccessDenied
            return web.Response(status=403, text="AccessDenied", content_type="application/xml")
        response = web.Response(body=b"" if request.method == "HEAD" else stored.body)
        response.headers["Content-Type"] = stored.content_type
        response.headers["Cache-Control"] = stored.cache_control
        return response

    def _apply_headers_policy(self, response: web.StreamResponse, behaviour: Behaviour) -> None:
        if behaviour.headers_policy is None:
            return
        policy = self.template.security_header_overrides(behaviour.headers_policy,
                                                         self.parameters)
        for name, (value, override) in policy.items():
            value = self.header_overrides.get(name, value)
            if override or name not in response.headers:
                response.headers[name] = value
