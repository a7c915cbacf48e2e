"""Importers: real benchmark trajectories in, normalised trajectories and steps out.

``import_paths`` is the one entry point (the ``import_trajectories`` command and the UI upload
task both call it). Each unit (a file, or a BrowserGym task folder) is parsed and validated whole
and then saved in one transaction: it imports entirely or not at all. Trajectories already in the
dataset (same external id) are counted as duplicates and left alone, so importing twice is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from relabel.importers import (
    agenther,
    browsergym,
    message_logs,
    swe_agent,
    taubench,
    toolbench,
)
from relabel.importers.archives import unpacked
from relabel.importers.autodetect import detect
from relabel.importers.base import (
    ImportSummary,
    Parsed,
    Skipped,
    TrajectoryImportError,
    save_unit,
    too_deep_message,
)

__all__ = [
    "FORMATS",
    "SAMPLE_PATHS",
    "ImportSummary",
    "TrajectoryImportError",
    "import_paths",
    "import_sample",
    "parse_mapping",
]

MODULES: dict[str, ModuleType] = {
    m.NAME: m for m in (agenther, browsergym, toolbench, taubench, message_logs, swe_agent)
}
FORMATS = list(MODULES)
MAP_KEYS = message_logs.MAP_KEYS
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample"
SAMPLE_PATHS = [
    SAMPLE_DIR / "agenther.jsonl",
    SAMPLE_DIR / "browsergym",
    SAMPLE_DIR / "tau-bench.json",
]

Progress = Callable[[int, int], None]


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["goal=question", ...]`` as a dict; a bad item raises naming it."""
    mapping: dict[str, str] = {}
    for item in items:
        key, sep, field = item.partition("=")
        key, field = key.strip(), field.strip()
        if not sep or not key or not field:
            raise TrajectoryImportError("--map", f"{item!r} is not KEY=FIELD (e.g. goal=question)")
        if key not in MAP_KEYS:
            raise TrajectoryImportError(
                "--map", f"unknown key {key!r} in {item!r}: use one of {', '.join(MAP_KEYS)}"
            )
        mapping[key] = field
    return mapping


def import_paths(
    paths: Iterable[str | Path],
    dataset_name: str,
    fmt: str = "auto",
    mapping: dict[str, str] | None = None,
    progress: Progress | None = None,
    *,
    workdir: Path | None = None,
) -> ImportSummary:
    """Imports files, folders and archives into the dataset (created on demand), one unit at a
    time. Archives are unpacked within the limits into a folder under ``workdir`` (default: the
    system's temporary folder) that is removed afterwards; errors and ``source_file`` name a
    file inside one as ``archive.zip: member/path``.

    Raises TrajectoryImportError (file, record, field) on bad input; the unit at fault and every
    unit after it are not imported.
    """
    mapping = mapping or {}
    if fmt != "auto" and fmt not in MODULES:
        raise TrajectoryImportError(
            "--format", f"unknown format {fmt!r}: use auto or one of {', '.join(FORMATS)}"
        )
    if not dataset_name or not dataset_name.strip():
        raise TrajectoryImportError("--dataset", "a dataset name is required")
    with unpacked([Path(p) for p in paths], workdir) as files:
        try:
            units = plan(files.paths, fmt, mapping)
            return _import_units(units, dataset_name.strip(), mapping, progress, files.shown)
        except TrajectoryImportError as err:
            err.path, err.message = files.shown(err.path), files.shown(err.message)
            err.args = (str(err),)
            raise


def _import_units(
    units: list[tuple[ModuleType, Path]],
    dataset_name: str,
    mapping: dict[str, str],
    progress: Progress | None,
    shown: Callable[[str], str],
) -> ImportSummary:
    names = sorted({module.NAME for module, _ in units})
    if mapping and names != [message_logs.NAME]:
        raise TrajectoryImportError(
            "--map", f"applies to the messages format only (these paths are {', '.join(names)})"
        )
    summary = ImportSummary(dataset=dataset_name, format="+".join(names))
    for done, (module, unit) in enumerate(units, 1):
        try:
            _import_unit(summary, module, unit, mapping, shown(str(unit)))
        except TrajectoryImportError as err:
            if summary.files:
                err.message += (
                    f" (nothing from this file was imported; the {summary.files} file(s) before "
                    "it were: run again once it is fixed, what is there already is skipped)"
                )
            raise
        if progress:
            progress(done, len(units))
    return summary


def plan(
    paths: Iterable[str | Path], fmt: str, mapping: dict[str, str]
) -> list[tuple[ModuleType, Path]]:
    """Every unit to import, with its importer: files, and BrowserGym task folders."""
    units: list[tuple[ModuleType, Path]] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise TrajectoryImportError(path, "no such file or folder")
        if fmt == browsergym.NAME or (fmt == "auto" and path.is_dir() and _is_results(path)):
            units += [(browsergym, unit) for unit in browsergym.units(path)]
            continue
        for file in _files(path):
            units.append((MODULES[fmt] if fmt != "auto" else MODULES[detect(file, mapping)], file))
    return units


def _is_results(path: Path) -> bool:
    return browsergym.is_task_folder(path) or any(
        browsergym.is_task_folder(p) for p in path.iterdir()
    )


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".json", ".jsonl", ".traj"))
    if not files:
        raise TrajectoryImportError(path, "no .json, .jsonl or .traj file in this folder")
    return files


def _import_unit(
    summary: ImportSummary,
    module: ModuleType,
    unit: Path,
    mapping: dict[str, str],
    source_file: str,
) -> None:
    try:
        records: list[Parsed | Skipped] = module.parse(unit, mapping)
    except RecursionError:
        # JSON inside a field (tool arguments, an answer) nested beyond what Python can read.
        raise TrajectoryImportError(unit, too_deep_message(to_read=True)) from None
    result = save_unit(summary.dataset, records, source_format=module.NAME, source_file=source_file)
    summary.files += 1
    summary.imported += result.imported
    summary.duplicates += result.duplicates
    summary.successes += result.successes
    summary.failures += result.failures
    summary.nul_replaced += result.nul_replaced
    for skip in result.skipped:
        summary.add_skip(skip)


def import_sample(dataset_name: str = "sample") -> ImportSummary:
    """The bundled sample (relabel/sample/), as ``make demo`` and the tests use it."""
    return import_paths(SAMPLE_PATHS, dataset_name)
