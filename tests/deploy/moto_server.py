"""moto's server with the four fixes `chalice deploy` needs, for moto 5.2.5 only (test code).

`chalice deploy` of this app against moto 5.2.5 stops at four gaps in moto. Each is fixed here
the way moto itself would fix it, in moto's own backend/response classes, patched at server start:

1. API Gateway `ImportRestApi` answered 500 (KeyError) on a document whose `info` has no
   `description` (Chalice's has none): the description is now optional, as in AWS.
2. API Gateway `ImportRestApi` / `PutRestApi` refused Swagger 2.0 ("Only OpenAPI 3.x.x"), which
   is what Chalice sends and what AWS accepts: Swagger 2.0 is now accepted (and validated as 2.0
   when `failonwarnings` is set); other Swagger versions are still refused.
3. API Gateway v2 `CreateDeployment` had no route (404): deployments are now modelled
   (create, get, list, delete), and a deployment made with `StageName` becomes that stage's.
4. API Gateway `PutRestApi` failed (TypeError, 500) on a MOCK integration, which has no `uri`
   or `httpMethod` (Chalice writes one per path for CORS preflights): both are now optional for
   integrations that need neither, as in AWS.

Run it as `python -m tests.deploy.moto_server --port N [--host H]`: it applies the fixes, then
serves exactly like `moto_server` (`moto.server.main`). Any other moto version refuses to start:
the fixes copy moto 5.2.5's code paths and must be re-checked (or dropped) when moto moves.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import moto

MOTO_VERSION = "5.2.5"


def check_moto_version() -> None:
    assert moto.__version__ == MOTO_VERSION, (
        f"tests/deploy/moto_server.py patches moto {MOTO_VERSION} and moto {moto.__version__} is"
        " installed: check whether each gap is fixed upstream, then update or drop the patch"
    )


# --- gaps 1 and 2: API Gateway (v1) ImportRestApi / PutRestApi ---------------------------------


def _patch_apigateway() -> None:
    from moto.apigateway import models
    from moto.apigateway.exceptions import InvalidOpenAPIDocumentException

    backend_cls = models.APIGatewayBackend
    moto_put_rest_api = backend_cls.put_rest_api

    def import_rest_api(self: Any, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
        # Gap 1: moto read `api_doc["info"]["description"]` and answered 500 (KeyError) when the
        # document has no description. AWS takes `info.title` as the name and an optional
        # `info.description`. Otherwise moto 5.2.5's import_rest_api unchanged.
        if fail_on_warnings:
            try:
                models.validate(api_doc)
            except models.OpenAPIValidationError as e:
                raise InvalidOpenAPIDocumentException(e) from e
        info = api_doc["info"]
        api = self.create_rest_api(name=info["title"], description=info.get("description"))
        self.put_rest_api(api.id, api_doc, fail_on_warnings=fail_on_warnings)
        return api

    def put_rest_api(
        self: Any, function_id: str, api_doc: dict[str, Any], fail_on_warnings: bool,
        mode: str = "merge",
    ) -> Any:
        # Gap 2: moto refused any document with a `swagger` key ("Only OpenAPI 3.x.x"), though AWS
        # imports Swagger 2.0 and Chalice sends nothing else. moto builds resources, methods,
        # method responses and integrations from `paths` alone, read the same way in both
        # versions, so a 2.0 document is validated as 2.0 here and its paths go through moto's
        # own code. Any other `swagger` version still gets moto's refusal.
        if api_doc.get("swagger") != "2.0":
            return moto_put_rest_api(self, function_id, api_doc, fail_on_warnings, mode)
        if fail_on_warnings:
            try:
                models.validate(api_doc)
            except models.OpenAPIValidationError as e:
                raise InvalidOpenAPIDocumentException(e) from e
        paths_only = {key: value for key, value in api_doc.items() if key != "swagger"}
        return moto_put_rest_api(self, function_id, paths_only, False, mode)

    moto_put_integration = backend_cls.put_integration

    def put_integration(
        self: Any, function_id: str, resource_id: str, method_type: str, integration_type: str,
        uri: str | None = None, integration_method: str | None = None, **kwargs: Any,
    ) -> Any:
        # Gap 4: a MOCK integration (what Chalice writes for CORS preflights) has no `uri` and no
        # `httpMethod`; AWS takes it, but moto's put_integration required both, and put_rest_api
        # drops the missing ones, so the import failed with a TypeError (500). HTTP and AWS
        # integrations still get moto's own check that they name a method.
        return moto_put_integration(self, function_id, resource_id, method_type,
                                    integration_type, uri, integration_method, **kwargs)

    backend_cls.import_rest_api = import_rest_api
    backend_cls.put_rest_api = put_rest_api
    backend_cls.put_integration = put_integration


# --- gap 3: API Gateway v2 CreateDeployment -----------------------------------------------------


def _patch_apigatewayv2() -> None:
    import json

    from moto.apigatewayv2 import models, responses, urls
    from moto.apigatewayv2.exceptions import APIGatewayV2Error
    from moto.core.common_models import BaseModel
    from moto.core.utils import iso_8601_datetime_without_milliseconds

    # Gap 3: moto 5.2.5 has no deployments in API Gateway v2 (no model, no route: 404), so
    # `CreateDeployment` (and Get/GetDeployments/Delete) are added here as moto would: a model,
    # backend methods, response methods and the two URL paths of the API.

    class DeploymentNotFound(APIGatewayV2Error):
        code = 404

        def __init__(self, deployment_id: str) -> None:
            super().__init__(
                "NotFoundException", f"Invalid Deployment identifier specified {deployment_id}")

    class Deployment(BaseModel):
        # moto files each model under its service, named from the module (`moto.<service>...`).
        __module__ = models.__name__

        def __init__(self, description: str | None, auto_deployed: bool = False) -> None:
            self.deployment_id = models.random.get_random_string(length=6, lower_case=True)
            self.description = description
            self.auto_deployed = auto_deployed
            self.created_date = datetime.now()

        def to_json(self) -> dict[str, Any]:
            dct: dict[str, Any] = {
                "autoDeployed": self.auto_deployed,
                "createdDate": iso_8601_datetime_without_milliseconds(self.created_date),
                "deploymentId": self.deployment_id,
                "deploymentStatus": "DEPLOYED",
            }
            if self.description:
                dct["description"] = self.description
            return dct

    def deployments(api: Any) -> dict[str, Deployment]:
        return api.__dict__.setdefault("deployments", {})

    moto_stage_init = models.Stage.__init__
    moto_stage_to_json = models.Stage.to_json

    def stage_init(self: Any, api: Any, config: dict[str, Any]) -> None:
        moto_stage_init(self, api, config)
        self.deployment_id = config.get("deploymentId")

    def stage_to_json(self: Any) -> dict[str, Any]:
        dct = moto_stage_to_json(self)
        if getattr(self, "deployment_id", None):
            dct["deploymentId"] = self.deployment_id
        return dct

    def create_deployment(
        self: Any, api_id: str, description: str | None, stage_name: str | None,
    ) -> Deployment:
        api = self.get_api(api_id)
        stage = api.get_stage(stage_name) if stage_name else None
        deployment = Deployment(description)
        deployments(api)[deployment.deployment_id] = deployment
        if stage is not None:
            stage.deployment_id = deployment.deployment_id
        return deployment

    def get_deployment(self: Any, api_id: str, deployment_id: str) -> Deployment:
        found = deployments(self.get_api(api_id)).get(deployment_id)
        if found is None:
            raise DeploymentNotFound(deployment_id)
        return found

    def get_deployments(self: Any, api_id: str) -> list[Deployment]:
        return list(deployments(self.get_api(api_id)).values())

    def delete_deployment(self: Any, api_id: str, deployment_id: str) -> None:
        if deployments(self.get_api(api_id)).pop(deployment_id, None) is None:
            raise DeploymentNotFound(deployment_id)

    def create_deployment_response(self: Any) -> Any:
        api_id = self.path.split("/")[-2]
        params = json.loads(self.body or "{}")
        deployment = self.apigatewayv2_backend.create_deployment(
            api_id, description=params.get("description"), stage_name=params.get("stageName"))
        return 201, {}, json.dumps(deployment.to_json())

    def get_deployment_response(self: Any) -> Any:
        api_id, deployment_id = self.path.split("/")[-3], self.path.split("/")[-1]
        deployment = self.apigatewayv2_backend.get_deployment(api_id, deployment_id)
        return 200, {}, json.dumps(deployment.to_json())

    def get_deployments_response(self: Any) -> Any:
        api_id = self.path.split("/")[-2]
        found = self.apigatewayv2_backend.get_deployments(api_id)
        return 200, {}, json.dumps({"items": [d.to_json() for d in found]})

    def delete_deployment_response(self: Any) -> Any:
        api_id, deployment_id = self.path.split("/")[-3], self.path.split("/")[-1]
        self.apigatewayv2_backend.delete_deployment(api_id, deployment_id)
        return 204, {}, ""

    models.Stage.__init__ = stage_init
    models.Stage.to_json = stage_to_json
    backend_cls = models.ApiGatewayV2Backend
    backend_cls.create_deployment = create_deployment
    backend_cls.get_deployment = get_deployment
    backend_cls.get_deployments = get_deployments
    backend_cls.delete_deployment = delete_deployment
    response_cls = responses.ApiGatewayV2Response
    response_cls.create_deployment = create_deployment_response
    response_cls.get_deployment = get_deployment_response
    response_cls.get_deployments = get_deployments_response
    response_cls.delete_deployment = delete_deployment_response
    dispatch = response_cls.dispatch
    urls.url_paths["{0}/v2/apis/(?P<api_id>[^/]+)/deployments$"] = dispatch
    urls.url_paths["{0}/v2/apis/(?P<api_id>[^/]+)/deployments/(?P<deployment_id>[^/]+)$"] = (
        dispatch)


_patched = False


def patch_moto() -> None:
    """Apply the four fixes to moto's classes (once; refuses any moto but 5.2.5)."""
    global _patched
    check_moto_version()
    if not _patched:
        _patch_apigateway()
        _patch_apigatewayv2()
        _patched = True


def main(argv: list[str] | None = None) -> None:
    """`moto_server`'s command line (`--port`, `--host`, ...), with moto patched first."""
    patch_moto()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
