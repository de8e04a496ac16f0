"""The verified-token cache: only a byte-identical, already verified token hits, and an
expired one is refused even when it is cached."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from adapters.auth import tokens
from adapters.auth.tokens import LEEWAY_SECONDS, TokenAuthority, Unauthenticated
from coordinator.identity import Role

SECRET = b"s" * 32


def mint(authority: TokenAuthority, ttl: float = 60, subject: str = "svc") -> str:
    return authority.issue(subject, "acme", [Role.WORKER], ttl_seconds=ttl, now=datetime.now(UTC))


def test_a_cached_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a token verified (and so cached) while valid
    authority = TokenAuthority(SECRET)
    token = mint(authority, ttl=30)
    assert authority.verify(token).subject == "svc"
    # When the clock passes its expiry (plus the leeway)
    later = time.time() + 30 + LEEWAY_SECONDS + 5
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    # Then the cache does not vouch for it
    with pytest.raises(Unauthenticated, match="expired"):
        authority.verify(token)


def test_a_tampered_copy_of_a_cached_token_is_still_checked() -> None:
    authority = TokenAuthority(SECRET)
    token = mint(authority)
    authority.verify(token)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(Unauthenticated, match="signature"):
        authority.verify(forged)


def test_another_secret_does_not_share_the_cache() -> None:
    token = mint(TokenAuthority(SECRET))
    with pytest.raises(Unauthenticated, match="signature"):
        TokenAuthority(b"t" * 32).verify(token)


def test_the_cache_is_bounded() -> None:
    authority = TokenAuthority(SECRET, cache_size=3)
    minted = [mint(authority, subject=f"svc-{i}") for i in range(10)]
    for token in minted:
        authority.verify(token)
    assert len(authority._verified) == 3
    # An evicted token verifies again from scratch.
    assert authority.verify(minted[0]).subject == "svc-0"
