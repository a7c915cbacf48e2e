from __future__ import annotations

from django.urls import path

from relabel.exports import views

app_name = "exports"
urlpatterns = [
    path("", views.index, name="index"),
]
