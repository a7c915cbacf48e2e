"""Uploaded archives (.zip, .tar, .tar.gz, .tgz): unpacked beside the upload, safely, so a
results folder such as BrowserGym's task_N/ layout can be uploaded through the UI."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from relabel.importers.base import TrajectoryImportError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".zip") or name.endswith(TAR_SUFFIXES)


def unpack(path: Path) -> Path:
    """The folder an archive unpacks to (beside it), or ``path`` itself when not an archive.

    Members that would land outside that folder (absolute paths, ``..``, links out) are refused
    with an error naming the archive and the member; nothing is imported then.
    """
    if not is_archive(path):
        return path
    target = path.parent / "unpacked"
    target.mkdir(exist_ok=True)
    try:
        if path.name.lower().endswith(".zip"):
            _unzip(path, target)
        else:
            with tarfile.open(path) as archive:
                archive.extractall(target, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise TrajectoryImportError(str(path), f"cannot unpack the archive: {exc}") from None
    entries = list(target.iterdir())
    # An archive of one folder (results/task_1/...) is that folder.
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target


def _unzip(path: Path, target: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            parts = PurePosixPath(member).parts
            if member.startswith("/") or ".." in parts:
                raise TrajectoryImportError(
                    str(path), f"member {member!r} would be written outside the upload"
                )
        archive.extractall(target)
