"""Importing a file uploaded through the UI, and cleaning up after it."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

from relabel.importers import ImportSummary, Progress, import_paths


def import_upload_file(
    path: Path,
    dataset_name: str,
    *,
    fmt: str = "auto",
    mapping: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Imports an uploaded file; an archive is unpacked beside it, within the limits, and that
    copy removed afterwards. A failed import removes the upload's whole folder: nothing of a
    refused upload stays on the server."""
    try:
        return import_paths(
            [path], dataset_name, fmt=fmt, mapping=mapping, progress=progress, workdir=path.parent
        )
    except Exception:
        discard_upload(path)
        raise


def discard_upload(path: Path) -> None:
    """Removes the folder of one upload (UPLOAD_ROOT/<id>/), and never anything else."""
    folder = path.parent
    if folder.parent.resolve() == Path(settings.UPLOAD_ROOT).resolve():
        shutil.rmtree(folder, ignore_errors=True)
