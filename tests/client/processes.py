"""``fleetlog`` commands as OS processes (``python -m adapters.cli ...``): a server
whose address is read from its first line, and workers to kill or stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from adapters.worker.processes import PROJECT_ROOT

LISTENING = re.compile(r"fleetlog listening on (http://\S+)")
INHERITED_SETTINGS = (
    "DATABASE_URL",
    "FLEETLOG_DATA_DIR",
    "FLEETLOG_URL",
    "FLEETLOG_TOKEN",
    "FLEETLOG_TENANT",
)


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without Fleetlog settings that would change what runs, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_SETTINGS}
    if env.get("CLICKHOUSE_URL", "").startswith("chdb:"):
        del env["CLICKHOUSE_URL"]  # the test process holds that engine directory
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_fleetlog(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``fleetlog ARGS`` to the end, output captured (for commands that should refuse or finish)."""
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
    )


class FleetlogProcess:
    def __init__(self, name: str, args: Sequence[str], log_dir: Path, env: Mapping[str, str]):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env),
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_for_url(self, timeout: float = 30.0) -> str:
        """The address a ``fleetlog serve`` process prints once it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = LISTENING.search(self.output())
            if found:
                return found.group(1)
            if not self.alive:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start listening:\n{self.tail()}")

    def kill(self) -> int:
        if self.alive:
            self.process.kill()
        return self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (a graceful stop) and wait; SIGKILL if it does not end in time."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s:\n{self.tail()}") from None

    def close(self) -> None:
        if self.process.returncode is None:
            self.kill()
        self._log.close()
