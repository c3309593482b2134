"""How a running job reports back: its output so far, and whether it should go on."""

from __future__ import annotations

from scheduler_app import runs
from workers.executors.process import Heartbeat


def heartbeat_for(run_id: int) -> Heartbeat:
    """Save the output so far; False once the run is no longer running (it was cancelled).

    One UPDATE per flush interval does both: the row count says whether the run is
    still ``running``, so a cancel from any node reaches the node that runs it.
    """

    def beat(output: str) -> bool:
        return runs.save_output(run_id, output)

    return beat
