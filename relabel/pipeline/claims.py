"""Claims and leases: which worker holds which items of a run.

A task claims a batch of items with one conditional UPDATE that sets a lease and a claim token;
only the holder of the claim on an unfinished item may write its result (relabel.pipeline.item),
so a task delivered twice, or a resumed run, never makes a second candidate. Tokens are derived
from the Celery task's id, so a task redelivered after its worker died takes its own items back
at once instead of waiting for their leases to run out.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from relabel.models import Run, RunItem, Step

LOAD_BATCH = 64


def lease_seconds() -> int:
    # A worker cannot hold an item longer than a task may live.
    return int(settings.CELERY_TASK_TIME_LIMIT)


def claim_token(claim_key: str, batch: int) -> str:
    return hashlib.sha1(f"{claim_key}:{batch}".encode()).hexdigest()


def claim(item_ids: list[int], token: str = "") -> str:
    """Leases the claimable items among ``item_ids`` with one conditional UPDATE; returns the
    claim's token ("" when another worker holds them all, or they are done). Items already
    held under ``token`` are claimable again (the same task, redelivered)."""
    now = timezone.now()
    token = token or uuid.uuid4().hex
    claimed = (
        RunItem.objects.filter(pk__in=item_ids)
        .claimable(now, token)
        .update(
            lease_until=now + timedelta(seconds=lease_seconds()),
            claim_token=token,
            attempts=F("attempts") + 1,
            error="",
        )
    )
    return token if claimed else ""


def unclaimed(item_ids: list[int]) -> list[int]:
    """The items among ``item_ids`` nobody has started (pending, lease free)."""
    rows = RunItem.objects.filter(pk__in=item_ids).pending()
    return list(rows.claimable(timezone.now()).order_by("pk").values_list("pk", flat=True))


def release_claims(run: Run, tokens: list[str]) -> None:
    """Best effort, when a task stops early: its unfinished items need not wait for the lease."""
    try:
        for i in range(0, len(tokens), 500):
            held = RunItem.objects.filter(run=run, claim_token__in=tokens[i : i + 500])
            held.unfinished().update(lease_until=None)
    except DatabaseError:
        pass


def release_item(item_id: int) -> None:
    """Best effort after a database error: free the item for whoever comes next."""
    with contextlib.suppress(DatabaseError):
        RunItem.objects.filter(pk=item_id).update(lease_until=None, claim_token="")


def load_items(
    item_ids: list[int], claim_key: str, tokens: list[str]
) -> Iterator[tuple[RunItem, list[Step]]]:
    """Claims the unfinished items among ``item_ids`` batch by batch, and yields those this
    task now holds with their trajectories and steps: three queries a batch, none per item.
    Each claim's token is appended to ``tokens``."""
    for i in range(0, len(item_ids), LOAD_BATCH):
        batch = item_ids[i : i + LOAD_BATCH]
        token = claim(batch, claim_token(claim_key, i))
        if not token:
            continue
        tokens.append(token)
        items = list(
            RunItem.objects.filter(pk__in=batch, claim_token=token).select_related("trajectory")
        )
        steps: dict[int, list[Step]] = {item.trajectory_id: [] for item in items}
        # Prompts use the stored excerpts; the compressed full observations stay in the database.
        rows = Step.objects.filter(trajectory_id__in=steps).defer("observation_full")
        for step in rows.order_by("trajectory_id", "index"):
            steps[step.trajectory_id].append(step)
        for item in items:
            yield item, steps[item.trajectory_id]
