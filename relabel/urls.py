from __future__ import annotations

from django.urls import path

from relabel import views

urlpatterns = [
    path("", views.home, name="home"),
    path("imports/", views.upload, name="upload"),
    path("imports/<int:job_id>/", views.import_progress, name="import_progress"),
    path("runs/start/", views.start_run, name="run_start"),
    path("runs/<int:run_id>/", views.run_page, name="run"),
    path("runs/<int:run_id>/progress/", views.run_progress, name="run_progress"),
    path("runs/<int:run_id>/candidates/", views.candidates, name="candidates"),
    path("candidates/<int:candidate_id>/", views.candidate_page, name="candidate"),
]
