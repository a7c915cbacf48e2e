"""Archives (.zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz), unpacked safely and within limits, so
a results folder such as BrowserGym's task_N/ layout can be imported from one file: by the UI's
upload and by the import_trajectories command alike, under the same limits.

The limits (settings: members, total unpacked bytes, unpacked bytes per byte of archive) are
checked while unpacking, on the bytes actually written, never on the sizes an archive declares.
Members stream to disk through a small buffer, so memory stays flat whatever an archive holds.
Members that would land outside the target (absolute paths, ``..``), links and special files are
refused. On any refusal the partly unpacked folder is removed and nothing is imported.
"""

from __future__ import annotations

import lzma
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings

from relabel.importers.base import TrajectoryImportError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MB = 2**20
CHUNK = 256 * 1024
# Below this much unpacked data no ratio is suspicious: a 2 KB zip of a 300 KB JSON file is fine.
RATIO_FLOOR = MB
UNPACK_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
)


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (name.endswith(".zip") or name.endswith(TAR_SUFFIXES))


@dataclass
class Budget:
    """What one archive may still unpack; every member and every byte written is counted."""

    archive: Path
    members: int = 0
    written: int = 0
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = max(1, self.archive.stat().st_size)

    def refuse(self, problem: str) -> TrajectoryImportError:
        return TrajectoryImportError(self.archive, problem)

    def member(self) -> None:
        self.members += 1
        limit = settings.AGENTHER_ARCHIVE_MAX_MEMBERS
        if self.members > limit:
            raise self.refuse(f"holds more than {limit} members (AGENTHER_ARCHIVE_MAX_MEMBERS)")

    def add(self, count: int) -> None:
        self.written += count
        limit, ratio = settings.AGENTHER_ARCHIVE_MAX_BYTES, settings.AGENTHER_ARCHIVE_MAX_RATIO
        if self.written > limit:
            raise self.refuse(f"unpacks to more than {limit / MB:g} MB (AGENTHER_ARCHIVE_MAX_MB)")
        if self.written > RATIO_FLOOR and self.written > ratio * self.size:
            raise self.refuse(
                f"unpacks to more than {ratio:g} times its own size (the compression ratio "
                "limit, AGENTHER_ARCHIVE_MAX_RATIO): refused as a likely archive bomb"
            )

    def copy(self, source: IO[bytes], target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            while chunk := source.read(CHUNK):
                self.add(len(chunk))
                out.write(chunk)


def unpack(path: Path, target: Path) -> Path:
    """Unpacks the archive at ``path`` into the new folder ``target`` within the limits; returns
    the folder to import (the archive's one top folder, if it has just one)."""
    target.mkdir(parents=True)
    budget = Budget(path)
    try:
        if path.name.lower().endswith(".zip"):
            _unzip(budget, target)
        else:
            _untar(budget, target)
    except UNPACK_ERRORS as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise budget.refuse(f"cannot unpack the archive: {exc}") from None
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    entries = list(target.iterdir())
    if not entries:
        raise budget.refuse("the archive is empty: no .json, .jsonl or .traj file in it")
    # An archive of one folder (results/task_1/...) is that folder.
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target


def _destination(budget: Budget, target: Path, name: str) -> Path:
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise budget.refuse(f"member {name!r} would be written outside the upload")
    return target.joinpath(*parts)


def _unzip(budget: Budget, target: Path) -> None:
    with zipfile.ZipFile(budget.archive) as archive:
        for info in archive.infolist():
            budget.member()
            destination = _destination(budget, target, info.filename)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            with archive.open(info) as source:
                budget.copy(source, destination)


def _untar(budget: Budget, target: Path) -> None:
    with tarfile.open(budget.archive) as archive:
        for member in archive:  # one header at a time: never the whole member list first
            budget.member()
            destination = _destination(budget, target, member.name)
            if member.isdir():
                destination.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has one
                budget.copy(source, destination)
            else:
                raise budget.refuse(
                    f"member {member.name!r} is a link or a special file: not accepted"
                )


@dataclass
class Unpacked:
    """The paths to import (archives replaced by their unpacked folders), and how to name a
    path inside one: ``archive.zip: member/path``, never the folder it was unpacked to."""

    paths: list[Path]
    roots: dict[str, str]

    def shown(self, text: str) -> str:
        for root, archive in self.roots.items():
            text = text.replace(root + "/", f"{archive}: ").replace(root, archive)
        return text


@contextmanager
def unpacked(paths: Iterable[Path], workdir: Path | None = None) -> Iterator[Unpacked]:
    """Each archive among ``paths`` unpacked into a new folder under ``workdir`` (by default the
    system's temporary folder), which is removed afterwards whatever happens."""
    result = Unpacked([], {})
    folders: list[Path] = []
    try:
        for path in paths:
            if not is_archive(path):
                result.paths.append(path)
                continue
            folder = Path(tempfile.mkdtemp(prefix="agenther-unpack-", dir=workdir))
            folders.append(folder)
            result.roots[str(folder / "files")] = str(path)
            result.paths.append(unpack(path, folder / "files"))
        yield result
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
