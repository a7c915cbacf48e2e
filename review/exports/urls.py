from __future__ import annotations

from django.urls import path

from review.exports import views

app_name = "exports"
urlpatterns = [
    path("", views.index, name="index"),
    path("<int:job_id>/", views.detail, name="detail"),
    path("<int:job_id>/files/<str:name>", views.download, name="download"),
]
