from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from agenther_site.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("precision/", include("review.precision.urls")),
    path("exports/", include("review.exports.urls")),
    path("", include("review.urls")),
    path("", include("relabel.urls")),
]
