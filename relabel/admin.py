from __future__ import annotations

from django.contrib import admin

from relabel.models import Candidate, Dataset, Run, Trajectory


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]


@admin.register(Trajectory)
class TrajectoryAdmin(admin.ModelAdmin):
    list_display = ["external_id", "dataset", "source_format", "success", "reward"]
    list_filter = ["source_format", "success"]
    search_fields = ["external_id", "goal"]
    exclude = ["raw"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "backend", "status", "created_at"]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "gate", "confidence", "review_state"]
    list_filter = ["gate", "review_state"]
    raw_id_fields = ["item", "run", "trajectory"]
