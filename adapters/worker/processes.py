"""Worker processes (``python -m adapters.worker``) as the demo and the tests drive
them: start, freeze (SIGSTOP), resume (SIGCONT), kill (SIGKILL), stop (SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import adapters

PROJECT_ROOT = Path(adapters.__file__).resolve().parent.parent


class WorkerProcess:
    def __init__(self, factory_id: str, args: Sequence[str], log_path: Path):
        self.factory_id = factory_id
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        command = [sys.executable, "-m", "adapters.worker", "--factory-id", factory_id, *args]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> int:
        if self.alive:
            self.process.kill()  # SIGKILL also ends a stopped process
        return self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (a graceful stop) and wait; SIGKILL if it does not end in time."""
        if self.alive:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def log_tail(self, lines: int = 20) -> list[str]:
        self._log.flush()
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.splitlines()[-lines:]

    def close(self) -> None:
        """Make sure the process is gone and its log closed (idempotent)."""
        if self.process.returncode is None:
            self.kill()
        self._log.close()


def worker_args(
    *,
    handlers: str,
    data_dir: Path | None = None,
    database_url: str | None = None,
    tenant: str | None = None,
    options: Sequence[str] = (),
) -> list[str]:
    """Command-line arguments for ``python -m adapters.worker`` (minus --factory-id)."""
    store = ["--database-url", database_url] if database_url else ["--data-dir", str(data_dir)]
    scope = ["--tenant", tenant] if tenant else ["--all-tenants"]
    return ["--handlers", handlers, *store, *scope, *options]
