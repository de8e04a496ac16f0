"""``fleetlog demo`` (the README's main job) end to end: three worker processes, a frozen zombie,
its reaped lease, the refused late write, and a clean finish."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.worker.processes import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_demo_tells_the_zombie_story_and_exits_0(tmp_path: Path) -> None:
    # When the demo runs on a fresh directory
    done = subprocess.run(
        [str(Path(sys.executable).with_name("fleetlog")), "demo", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        check=False,
    )
    out = done.stdout

    # Then it succeeds, in a directory of its own
    assert done.returncode == 0, out + done.stderr
    assert len(list(tmp_path.glob("demo-*"))) == 1
    # And it tells of the expired lease, the refused write and who finished the job
    assert "froze worker-" in out
    assert re.search(r"the reaper expired worker-\d's lease", out)
    assert "LeaseExpired" in out
    assert re.search(r"late write\s+\w+ at .* presented epoch \d+, current epoch \d+: refused", out)
    assert "StaleWriteRejected" in out
    holder = re.search(r"held by\s+(worker-\d)", out)
    finisher = re.search(r"finished by\s+(worker-\d)", out)
    assert holder and finisher and holder[1] != finisher[1]
    assert "resumed from checkpoint" in out
    assert "Tenant alpha" in out and "Tenant beta" in out
    assert "Projections verified" in out
    assert "the story happened as told" in out
