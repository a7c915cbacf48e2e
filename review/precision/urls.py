from __future__ import annotations

from django.urls import path

from review.precision import views

app_name = "precision"
urlpatterns = [
    path("runs/<int:run_id>/", views.run_page, name="run"),
    path("runs/<int:run_id>/figures.<str:fmt>", views.download, name="download"),
    path("compare/", views.compare, name="compare"),
]
