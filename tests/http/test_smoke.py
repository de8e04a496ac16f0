from __future__ import annotations

from tests.http.live import LiveServer


def test_health_needs_no_token_and_readiness_names_the_store(live_server: LiveServer) -> None:
    with live_server.client(None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["store"] in {"sqlite", "postgres"}
