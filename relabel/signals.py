"""What the automatic side tells whoever listens, without knowing who: the review side connects
to these in its ``ready()`` (relabel never imports review)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with ``run=`` when a run has processed every item (and again when a finished run is
# resumed): receivers must be idempotent. Sent inside the transaction that marks it finished.
run_finished = Signal()
