"""The OpenAPI 3.1 document, generated from the endpoint declarations and the very
pydantic models that validate requests (request bodies in validation mode, responses
in serialization mode), so it cannot drift from what the server does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from adapters.http.problems import PROBLEM_JSON
from adapters.http.routing import JSON, NDJSON, Endpoint, LinesOf, ListOf
from adapters.http.schemas import Problem

REF = "#/components/schemas/{model}"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def document(endpoints: Sequence[Endpoint], *, version: str, max_body_bytes: int) -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for ep in endpoints:
        if ep.body_schema is not None:
            pairs.append((ep.body_schema, "validation"))
        for schema in ep.responses.values():
            model = schema.model if isinstance(schema, ListOf | LinesOf) else schema
            if model is not None:
                pairs.append((model, "serialization"))
    pairs.append((Problem, "serialization"))
    keys, defs = models_json_schema(list(dict.fromkeys(pairs)), ref_template=REF)
    refs = {(model, mode): ref for (model, mode), ref in keys.items()}

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "operationId": ep.name,
            "summary": ep.summary,
            "tags": [ep.tag],
            "parameters": _parameters(ep),
            "responses": _responses(ep, ref, max_body_bytes),
        }
        if ep.description:
            op["description"] = ep.description
        if ep.role is None:
            op["security"] = []
        else:
            op["description"] = (op.get("description", "") + f" Needs the '{ep.role}' role.").strip()
        if ep.body_schema is not None:
            op["requestBody"] = {
                "required": ep.body_required,
                "content": {JSON: {"schema": ref(ep.body_schema, "validation")}},
            }
        if not op["parameters"]:
            del op["parameters"]
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Fleetlog",
            "version": version,
            "description": "An event-sourced job coordinator. Every request but the health checks "
            "carries `Authorization: Bearer <token>` (mint one with `fleetlog token`). Errors are "
            "`application/problem+json` (RFC 9457) with a stable `code`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }


def _parameters(ep: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    if "{job_id}" in ep.path:
        params.append(
            {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        )
    if "{tenant}" in ep.path:
        params.append(
            {
                "name": "tenant",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": TENANT_PATTERN},
            }
        )
    if ep.query is not None:
        schema = ep.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, declared in schema["properties"].items():
            prop = _inline(declared, schema.get("$defs", {}))
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    for header, text in ep.headers.items():
        params.append(
            {
                "name": header,
                "in": "header",
                "required": False,
                "description": text,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            }
        )
    return params


def _inline(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return dict(defs[prop["$ref"].split("/")[-1]])
    return prop


def _responses(ep: Endpoint, ref: Any, max_body_bytes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    statuses = dict(ep.responses)
    if ep.body is not None:
        statuses.update({400: Problem, 413: Problem, 415: Problem, 422: Problem})
    if ep.query is not None or "{job_id}" in ep.path:
        statuses.setdefault(422, Problem)
    if ep.role is not None:
        statuses.setdefault(401, Problem)
        statuses.setdefault(403, Problem)
        statuses.setdefault(503, Problem)
    for status in sorted(statuses):
        schema = statuses[status]
        description = _DESCRIPTIONS.get(status, "OK")
        if status == 413:
            description += f" (more than {max_body_bytes} bytes)"
        if schema is None:
            out[str(status)] = {"description": description}
        elif isinstance(schema, ListOf):
            body = {"type": "array", "items": ref(schema.model, "serialization")}
            out[str(status)] = {"description": description, "content": {JSON: {"schema": body}}}
        elif isinstance(schema, LinesOf):
            out[str(status)] = {
                "description": f"{description}: a stream of {schema.model.__name__} documents, one "
                "JSON document per line (NDJSON), each written as it comes",
                "content": {NDJSON: {"schema": ref(schema.model, "serialization")}},
            }
            if schema.headers:
                out[str(status)]["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}} for name, text in schema.headers
                }
        else:
            media = PROBLEM_JSON if schema is Problem else JSON
            out[str(status)] = {
                "description": description,
                "content": {media: {"schema": ref(schema, "serialization")}},
            }
        if status in (429, 503):
            out[str(status)]["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
            }
    return out


_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    400: "Malformed JSON",
    401: "Missing, invalid or expired token",
    403: "The token lacks the role",
    404: "No such resource (another tenant's looks the same)",
    409: "Conflict with the resource's state (stale epoch, illegal transition, ...)",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Validation failed",
    429: "A quota refuses it",
    503: "Store unavailable or busy; retry",
}
