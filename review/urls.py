from __future__ import annotations

from django.urls import path

from review import views

urlpatterns = [
    path("review/", views.review, name="review"),
    path("review/tasks/<int:task_id>/", views.decide, name="decide"),
    path("review/undo/", views.undo, name="undo"),
    path("review/shortcuts/", views.shortcuts, name="review_shortcuts"),
    path("review/runs/<int:run_id>/", views.run_review, name="run_review"),
]
