"""Running ``fleetlog`` in tests: as the real console script in a child process, or
in-process through ``main(argv)`` (same parser, handlers and error boundary, without
the ~0.5 s interpreter start), against one store given by its command-line options."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.cli.main import main

CLEARED_ENV = ("DATABASE_URL", "FLEETLOG_DATA_DIR", "FLEETLOG_TENANT", "FLEETLOG_DEBUG")
"""Dropped for child processes. An in-process run keeps CLICKHOUSE_URL: the test session's
chDB directory (one engine per process); a child gets the one in its --data-dir."""


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code in (0, 1), f"exit {self.code}: {self.err}"
        return json.loads(self.out)

    def error(self) -> dict[str, Any]:
        """The JSON error object of a refused command (exit 2, nothing on stdout)."""
        assert self.code == 2, f"expected a refusal, got exit {self.code}: {self.out}{self.err}"
        assert self.out == ""
        assert "Traceback" not in self.err
        body: dict[str, Any] = json.loads(self.err)
        return body


def fleetlog_command() -> list[str]:
    script = Path(sys.executable).with_name("fleetlog")
    return [str(script)] if script.exists() else [sys.executable, "-m", "adapters.cli.main"]


@dataclass
class Cli:
    """``cli("jobs", "--state", "queued")`` runs ``fleetlog <store> --tenant acme jobs ...``."""

    store_args: list[str]
    cwd: Path
    in_process: bool
    monkeypatch: pytest.MonkeyPatch
    clear_env: tuple[str, ...] = CLEARED_ENV
    """Variables removed so the developer's own settings never leak into a test."""

    def __call__(self, *args: str, tenant: str | None = "acme", stdin: str | None = None) -> Ran:
        argv = [*self.store_args, *(["--tenant", tenant] if tenant else []), *args]
        return self.in_proc(argv, stdin) if self.in_process else self.child(argv, stdin)

    def child(self, argv: list[str], stdin: str | None) -> Ran:
        env = {k: v for k, v in os.environ.items() if k not in self.clear_env}
        if env.get("CLICKHOUSE_URL", "").startswith("chdb:"):
            del env["CLICKHOUSE_URL"]
        done = subprocess.run(
            [*fleetlog_command(), *argv],
            input=stdin or "",
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=env,
            timeout=60,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def in_proc(self, argv: list[str], stdin: str | None) -> Ran:
        out, err = io.StringIO(), io.StringIO()
        with self.monkeypatch.context() as m:
            for name in self.clear_env:
                m.delenv(name, raising=False)
            m.chdir(self.cwd)
            m.setattr(sys, "stdin", io.StringIO(stdin or ""))
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        return Ran(code, out.getvalue(), err.getvalue())
