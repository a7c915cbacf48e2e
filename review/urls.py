from __future__ import annotations

from django.urls import path

from review import adjudication, comments, queue_admin, rater_views, views

urlpatterns = [
    path("review/", views.review, name="review"),
    path("review/tasks/<int:task_id>/", views.decide, name="decide"),
    path("review/undo/", views.undo, name="undo"),
    path("review/shortcuts/", views.shortcuts, name="review_shortcuts"),
    path("review/runs/<int:run_id>/", views.run_review, name="run_review"),
    path("review/runs/<int:run_id>/queues/", queue_admin.run_queues, name="run_queues"),
    path("review/queues/<int:queue_id>/", queue_admin.queue_detail, name="queue_detail"),
    path("review/adjudicate/", adjudication.adjudicate, name="adjudicate"),
    path("review/candidates/<int:candidate_id>/comments/", comments.comment, name="comment"),
    path("review/me/", rater_views.my_progress, name="my_progress"),
    path("review/raters/", rater_views.raters, name="raters"),
    path("review/raters/<int:user_id>/", rater_views.rater, name="rater"),
]
