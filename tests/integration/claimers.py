"""Process entry points for the concurrency tests (importable by spawned processes)."""

from __future__ import annotations

import traceback
from typing import Any

from adapters.bootstrap import Settings, build_app
from coordinator.claiming import ClaimRequest
from coordinator.identity import Identity
from coordinator.reporting import Completion


def claim_and_complete(settings_json: str, index: int, batch: int, start: Any, results: Any) -> None:
    """Claim and complete until the queue is empty; report counts and any error."""
    settings = Settings.model_validate_json(settings_json).model_copy(update={"migrate": False})
    fleet = build_app(settings)
    worker = Identity.of(f"claimer-{index}", None)
    done: list[str] = []
    errors: list[str] = []
    try:
        start.wait()
        empty = 0
        while empty < 3:
            claimed = fleet.claim(worker, ClaimRequest(factory_id=f"proc-{index}", max_jobs=batch))
            if not claimed:
                empty += 1
                continue
            empty = 0
            results_of = fleet.complete(
                worker, [Completion(job_id=c.job.id, epoch=c.epoch, outcome="succeeded") for c in claimed]
            )
            for r in results_of:
                if r.ok:
                    done.append(str(r.job_id))
                else:
                    errors.append(f"{r.job_id}: {r.error}")
    except Exception:  # process boundary: report everything to the parent
        errors.append(traceback.format_exc())
    finally:
        fleet.close()
    results.put((index, done, errors))


def run_reaper(settings_json: str, start: Any, results: Any) -> None:
    settings = Settings.model_validate_json(settings_json).model_copy(update={"migrate": False})
    fleet = build_app(settings)
    try:
        start.wait()
        result = fleet.reaper.run_once()
        results.put((result.expired, None))
    except Exception:
        results.put((0, traceback.format_exc()))
    finally:
        fleet.close()
