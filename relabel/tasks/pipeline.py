"""Celery tasks for pipeline."""

from __future__ import annotations

__all__: list[str] = []
