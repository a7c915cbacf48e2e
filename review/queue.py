"""The review queue: which candidates people rate, leases, and the blind audit sample."""

from __future__ import annotations

from relabel.models import Run


def populate_queue(run: Run) -> int:
    """Creates the review tasks of a finished run (idempotent); returns how many were added.

    Called by the pipeline when a run finishes.
    """
    return 0
