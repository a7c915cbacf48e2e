"""The four-stage pipeline, one module per stage, and how a run's items go through it.

Stages, in order (relabel.pipeline.item.relabel_item calls them):
1. ``detect``: failure detection (the benchmark's signal first; severity and weight apart).
2. ``extract``: outcome extraction, each achievement grounded to step numbers.
3. ``hindsight``: up to K relabel attempts, refusing goals that restate the original;
   ``judges``: the judge panel (a rejection is a binding veto); ``gate``: aggregation and gate.
4. Packaging is the review side's exports (review.exports).

How items are processed: ``claims`` (leases and claim tokens), ``item`` (one trajectory through
the stages, its result stored once), ``pools`` (threads, processes), ``batch`` (what one task
does), ``batch_run`` (a run through the endpoints' Batch API: the same stages, replayed as the
answers come), ``summary`` (a run's counts, calls and cost). Starting and resuming runs is
relabel.runs.
"""
