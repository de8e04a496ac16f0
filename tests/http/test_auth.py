"""Every 401 and 403 case, over a real server: a token is checked before anything else."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from adapters.auth import TokenAuthority
from coordinator.identity import Role
from tests.http.live import SECRET, LiveServer


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**over: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "mallory",
        "tenant": "acme",
        "roles": ["admin"],
        "exp": int(time.time()) + 600,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


BAD_TOKENS = {
    "alg-none": lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
    "alg-none-signed-looking": lambda: jwt.encode(_claims(), None, algorithm="none"),
    "wrong-secret": lambda: jwt.encode(_claims(), b"another-secret-" + b"y" * 32, algorithm="HS256"),
    "hs512": lambda: jwt.encode(_claims(), SECRET, algorithm="HS512"),
    "expired": lambda: jwt.encode(_claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
    "no-exp": lambda: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
    "no-sub": lambda: jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"),
    "no-roles": lambda: jwt.encode(_claims(roles=None), SECRET, algorithm="HS256"),
    "unknown-role": lambda: jwt.encode(_claims(roles=["root"]), SECRET, algorithm="HS256"),
    "bad-tenant": lambda: jwt.encode(_claims(tenant="Not A Tenant"), SECRET, algorithm="HS256"),
    "garbage": lambda: "not.a.jwt",
    "tampered": lambda: _tamper(jwt.encode(_claims(roles=["reader"]), SECRET, algorithm="HS256")),
}


def _tamper(token: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{_b64(_claims(roles=['admin']))}.{signature}"


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_every_bad_token_is_401_with_a_problem(live_server: LiveServer, kind: str) -> None:
    token = BAD_TOKENS[kind]()
    with live_server.client(token) as http:
        response = http.get("/v1/jobs")
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["code"] == "unauthenticated"
    assert body["type"] == "/problems/unauthenticated"
    assert "fleetlog token" in body["detail"]


@pytest.mark.parametrize("header", ["", "Bearer", "Basic dXNlcjpwYXNz", "Token abc", "bearer"])
def test_missing_or_malformed_authorization_header_is_401(live_server: LiveServer, header: str) -> None:
    with live_server.client(None) as http:
        response = http.get("/v1/jobs", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_an_expired_token_says_so(live_server: LiveServer) -> None:
    authority = TokenAuthority(SECRET)
    token = authority.issue(
        "old", "acme", [Role.READER], ttl_seconds=60, now=datetime.now(UTC) - timedelta(minutes=5)
    )
    with live_server.client(token) as http:
        response = http.get("/v1/jobs")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_401_comes_before_validation(live_server: LiveServer) -> None:
    with live_server.client(None) as http:
        response = http.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 401


ROUTES = [
    ("POST", "/v1/jobs", {"queue": "q"}, Role.SUBMITTER),
    ("POST", "/v1/jobs/batch", {"jobs": [{"queue": "q"}]}, Role.SUBMITTER),
    ("GET", "/v1/jobs", None, Role.READER),
    ("GET", "/v1/jobs/{id}", None, Role.READER),
    ("PATCH", "/v1/jobs/{id}", {"epoch": 1, "phase": "x"}, Role.WORKER),
    ("POST", "/v1/claim", {"factory_id": "f1"}, Role.WORKER),
    (
        "POST",
        "/v1/completions",
        {"completions": [{"job_id": "{id}", "epoch": 1, "outcome": "succeeded"}]},
        Role.WORKER,
    ),
    ("POST", "/v1/jobs/{id}/lease/renew", {"epoch": 1}, Role.WORKER),
    ("POST", "/v1/jobs/{id}/lease/release", {"epoch": 1}, Role.WORKER),
    ("POST", "/v1/jobs/{id}/cancel", {}, Role.SUBMITTER),
    ("POST", "/v1/jobs/{id}/requeue", None, Role.ADMIN),
    ("POST", "/v1/factories/heartbeat", {"factory_id": "f1"}, Role.WORKER),
    ("GET", "/v1/factories", None, Role.READER),
    ("GET", "/v1/jobs/{id}/runs", None, Role.READER),
    ("GET", "/v1/jobs/{id}/events", None, Role.READER),
    ("GET", "/v1/jobs/{id}/state?version=1", None, Role.READER),
    ("PUT", "/v1/tenants/acme/quotas", {"max_queued": 10}, Role.ADMIN),
    ("GET", "/v1/tenants/acme/quotas", None, Role.READER),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "role"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
def test_each_route_needs_its_role(
    live_server: LiveServer, method: str, path: str, body: object, role: Role
) -> None:
    with live_server.as_tenant("acme", Role.SUBMITTER) as submitter:
        job_id = submitter.post("/v1/jobs", json={"queue": "q"}).json()["job"]["id"]
    path = path.replace("{id}", job_id)
    payload = json.loads(json.dumps(body).replace("{id}", job_id)) if body is not None else None
    others = [r for r in Role if r not in (role, Role.ADMIN)]
    with live_server.as_tenant("acme", *others) as http:
        refused = http.request(method, path, json=payload)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "forbidden"
    assert str(role) in refused.json()["detail"]
    with live_server.as_tenant("acme", role) as http:
        allowed = http.request(method, path, json=payload)
    assert allowed.status_code not in (401, 403), allowed.text
