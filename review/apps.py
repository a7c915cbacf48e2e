from __future__ import annotations

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = "Review"

    def ready(self) -> None:
        # The automatic side knows nothing of review: it announces, review listens and registers.
        from relabel.signals import run_finished
        from review.exports.writer import export_job
        from review.models import ExportJob
        from review.queue import on_run_finished

        run_finished.connect(on_run_finished, dispatch_uid="review.queue.on_run_finished")
        ExportJob.performed_by(export_job)
