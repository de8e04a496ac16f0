"""``Endpoint``: one route declared once, for both serving and documenting it.

An endpoint names its method and path, the role it needs, the pydantic models of its
body and query string, and its responses. ``Dispatcher`` turns it into a Starlette
route that authenticates, authorises, reads the body under the size limit, parses and
validates it, and hands the handler a ``Call``; ``openapi.py`` turns the same
declaration into the OpenAPI document. Order of checks: 401, 403, 413/415/400, 422.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.auth import TokenAuthority, Unauthenticated
from adapters.http import problems
from coordinator.identity import Identity, Role
from domain.errors import DomainError

JSON = "application/json"
NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class ListOf:
    """A response that is a JSON array of ``model``."""

    model: type[BaseModel]

    def dump(self, items: list[Any]) -> bytes:
        return TypeAdapter(list[self.model]).dump_json(items)  # type: ignore[name-defined]


@dataclass(frozen=True)
class LinesOf:
    """A streamed response: ``model`` documents, one JSON document per line (NDJSON),
    written as they come."""

    model: type[BaseModel]
    headers: tuple[tuple[str, str], ...] = ()
    """Response headers it may carry: (name, description)."""


Schema = type[BaseModel] | ListOf | LinesOf | None
"""A response body's model (None: no body)."""


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    """Starlette syntax; ``{job_id}`` and ``{tenant}`` are the path parameters."""
    name: str
    summary: str
    handler: Callable[[Call], Awaitable[Response]]
    role: Role | None
    """None: no token needed (health checks)."""
    responses: Mapping[int, Schema]
    body: type[BaseModel] | None = None
    """The model that validates the body."""
    published: type[BaseModel] | None = None
    """The body's model as the document shows it, when wider than ``body`` (defaults to it)."""
    body_required: bool = True
    query: type[BaseModel] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Request headers it reads, with their descriptions."""
    tag: str = "jobs"
    description: str = ""

    @property
    def body_schema(self) -> type[BaseModel] | None:
        return self.published or self.body


@dataclass
class Call:
    request: Request
    identity: Identity
    body: Any
    query: Any
    path: dict[str, Any]


class BadBody(Exception):
    def __init__(self, response: Response):
        self.response = response


class Dispatcher:
    def __init__(self, authority: TokenAuthority, *, max_body_bytes: int):
        self.authority = authority
        self.max_body_bytes = max_body_bytes
        self.contract: dict[tuple[str, str], Any] = {}

    def enforce(self, document: Mapping[str, Any]) -> None:
        """Validate request bodies against ``document`` (the OpenAPI the app serves)."""
        components = document["components"]
        for path, operations in document["paths"].items():
            for method, op in operations.items():
                body = op.get("requestBody")
                if body is None:
                    continue
                schema = {**body["content"][JSON]["schema"], "components": components}
                self.contract[(method.upper(), path)] = jsonschema_rs.validator_for(schema)

    def routes(self, endpoints: list[Endpoint]) -> list[Route]:
        """One Starlette route per path, dispatching on the method, so that a 405 lists
        every method the path has in ``Allow``."""
        by_path: dict[str, dict[str, Endpoint]] = {}
        for endpoint in endpoints:
            by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
        return [self._route(path, methods) for path, methods in by_path.items()]

    def _route(self, path: str, methods: dict[str, Endpoint]) -> Route:
        async def serve(request: Request) -> Response:
            endpoint = methods.get("GET" if request.method == "HEAD" else request.method)
            assert endpoint is not None  # Starlette answered 405 for any other method
            try:
                return await self._serve(endpoint, request)
            except BadBody as bad:
                return bad.response
            except DomainError as exc:
                return problems.from_domain(exc)
            except Exception as exc:  # the request boundary: a bug becomes a logged 500
                return problems.internal(exc)

        starlette_path = path.replace("{job_id}", "{job_id:uuid}")
        return Route(starlette_path, serve, methods=list(methods))

    async def _serve(self, endpoint: Endpoint, request: Request) -> Response:
        identity = self._identity(request) if endpoint.role is not None else _ANONYMOUS
        if endpoint.role is not None:
            identity.require(endpoint.role, endpoint.summary.rstrip(".").lower())
        # Starlette's {job_id:uuid} converter already gives a UUID (anything else: 404).
        path = dict(request.path_params)
        query = _query(endpoint.query, request) if endpoint.query is not None else None
        body = await self._body(endpoint, request) if endpoint.body is not None else None
        return await endpoint.handler(Call(request, identity, body, query, path))

    def _identity(self, request: Request) -> Identity:
        header = request.headers.get("authorization")
        if not header:
            raise Unauthenticated("no Authorization header")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header is not 'Bearer <token>'")
        return self.authority.verify(token.strip())

    async def _body(self, endpoint: Endpoint, request: Request) -> Any:
        raw = await self._read(request)
        assert endpoint.body is not None
        if not raw.strip():
            if endpoint.body_required:
                raise BadBody(problems.problem("invalid-request", "this request needs a JSON body"))
            data: Any = {}
        else:
            kind = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
            if kind != JSON and not kind.endswith("+json"):
                raise BadBody(
                    problems.problem(
                        "unsupported-media-type",
                        f"the body is '{kind}'; send JSON with Content-Type: application/json",
                    )
                )
            data = _parse_json(raw)
        data = hook_body(endpoint, request, data)
        self._conform(endpoint, data)
        try:
            return endpoint.body.model_validate(data)
        except ValidationError as exc:
            raise BadBody(problems.from_validation(exc, "body")) from None

    def _conform(self, endpoint: Endpoint, data: Any) -> None:
        """The body against the published JSON Schema first: JSON types exactly as the
        document says ("5" is not 5, 0 is not false), which pydantic's lax mode would
        otherwise coerce. pydantic then checks what a schema cannot (cross-field rules)."""
        validator = self.contract.get((endpoint.method, endpoint.path))
        if validator is None:
            return
        errors: list[dict[str, str]] = []
        for error in (precise for found in validator.iter_errors(data) for precise in _explained(found)):
            loc = ["body", *(str(p) for p in error.instance_path)]
            unexpected = getattr(error.kind, "unexpected", None)
            if unexpected:  # additionalProperties: name each unknown field where it is
                errors += [
                    {"loc": ".".join([*loc, str(name)]), "msg": "unknown field", "type": "extra_forbidden"}
                    for name in unexpected
                ]
            else:
                message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
                errors.append({"loc": ".".join(loc), "msg": message, "type": "schema"})
            if len(errors) >= 10:
                break
        if errors:
            detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
            raise BadBody(problems.problem("invalid-request", f"invalid body: {detail}", errors=errors))

    async def _read(self, request: Request) -> bytes:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadBody(problems.problem("malformed-json", "Content-Length is not a number"))
            if int(declared) > limit:
                raise BadBody(_too_large(int(declared), limit))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadBody(_too_large(size, limit))
            chunks.append(chunk)
        return b"".join(chunks)


_ANONYMOUS = Identity("anonymous", None, frozenset())


def hook_body(endpoint: Endpoint, request: Request, data: Any) -> Any:
    """The ``Idempotency-Key`` header of a submit goes into the body (they must agree)."""
    key = request.headers.get("idempotency-key")
    if key is None or "Idempotency-Key" not in endpoint.headers:
        return data
    if not isinstance(data, dict):
        return data  # validation will say the body must be an object
    given = data.get("idempotency_key")
    if given is not None and given != key:
        raise BadBody(
            problems.problem(
                "invalid-request",
                "the Idempotency-Key header and the body's idempotency_key differ; send one of them",
                errors=[{"loc": "header.Idempotency-Key", "msg": "differs from body", "type": "mismatch"}],
            )
        )
    return {**data, "idempotency_key": key}


def _too_large(size: int, limit: int) -> Response:
    return problems.problem(
        "payload-too-large",
        f"the body has at least {size} bytes; this server accepts at most {limit} "
        "(split a batch into smaller ones, or keep large data outside the job and pass a reference)",
        fields={"limit_bytes": limit},
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (JSON has no NaN or Infinity)")


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        detail = "the body is not UTF-8 text"
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    except ValueError as exc:
        detail = str(exc)
    except RecursionError:
        detail = "the body is nested too deeply"
    raise BadBody(problems.problem("malformed-json", f"the body is not valid JSON: {detail}"))


def _query(model: type[BaseModel], request: Request) -> Any:
    data: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        if _is_list(model, key):
            data[key] = [part for v in values for part in v.split(",") if part]
        elif len(values) > 1:
            message = f"given {len(values)} times; give it once"
            errors = [{"loc": f"query.{key}", "msg": message, "type": "schema"}]
            detail = f"invalid query: query.{key}: {message}"
            raise BadBody(problems.problem("invalid-request", detail, errors=errors))
        else:
            data[key] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadBody(problems.from_validation(exc, "query")) from None


def _is_list(model: type[BaseModel], key: str) -> bool:
    info = model.model_fields.get(key)
    return info is not None and "list" in str(info.annotation)


def _explained(error: Any) -> list[Any]:
    """The errors that say what is wrong. A nullable field is ``anyOf: [its schema, null]``,
    and a value failing the first branch is reported as "not valid under any of the
    schemas listed in the 'anyOf' keyword": for a value that is not null, the branches that
    only say "is not of type null" are dropped, and when one branch is left its own errors
    ("... is greater than the maximum of ...", at the field itself) are given instead."""
    branches = getattr(error.kind, "context", None)
    if not branches:
        return [error]
    left = [branch for branch in branches if not all(_only_not_null(sub) for sub in branch)]
    if len(left) != 1 or not left[0]:
        return [error]
    return [precise for sub in left[0] for precise in _explained(sub)]


def _only_not_null(error: Any) -> bool:
    kind = error.kind
    return isinstance(kind, jsonschema_rs.ValidationErrorKind.Type) and list(kind.types) == ["null"]
