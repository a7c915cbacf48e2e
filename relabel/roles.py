"""Roles are Django groups: annotator < adjudicator < researcher < admin. Checked in views, never
in templates.

An adjudicator is an annotator who also decides the items its raters disagreed on (the
adjudication queue); researchers and admins may adjudicate too, so the role sits between them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

ROLES = ["annotator", "adjudicator", "researcher", "admin"]


def role_of(user: AbstractBaseUser | AnonymousUser) -> str | None:
    """The highest role a user holds (superusers are admins)."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return "admin"
    cached = getattr(user, "_agenther_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    role = next((r for r in reversed(ROLES) if r in names), None)
    user._agenther_role = role
    return role


def has_role(user: AbstractBaseUser | AnonymousUser, role: str) -> bool:
    held = role_of(user)
    return held is not None and ROLES.index(held) >= ROLES.index(role)


def require_role(role: str) -> Callable:
    """View decorator: login first, then at least ``role``; otherwise 403."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_role(request.user, role):
                raise PermissionDenied(f"this page needs the {role} role")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def grant_role(user: AbstractBaseUser, role: str) -> None:
    """Makes ``role`` the user's only role."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    groups = [Group.objects.get_or_create(name=name)[0] for name in ROLES]
    user.groups.remove(*groups)
    user.groups.add(next(g for g in groups if g.name == role))
    user._agenther_role = role


def role_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: which navigation the user may see (the views still check)."""
    role = role_of(request.user) if hasattr(request, "user") else None
    return {
        "user_role": role,
        "is_researcher": role in ("researcher", "admin"),
        "is_admin": role == "admin",
        "can_adjudicate": role in ("adjudicator", "researcher", "admin"),
    }
