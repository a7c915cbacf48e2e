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
    anthropic,
    browsergym,
    langfuse,
    langsmith,
    message_logs,
    openai_responses,
    otel,
    swe_agent,
    taubench,
    toolbench,
)
from relabel.importers.archives import unpacked
from relabel.importers.autodetect import detect
from relabel.importers.base import (
    CHAT_ROLES,
    FileReport,
    ImportOptions,
    ImportSummary,
    Parsed,
    Skipped,
    SuccessScore,
    TrajectoryImportError,
    save_unit,
    too_deep_message,
)

__all__ = [
    "FORMATS",
    "SAMPLE_PATHS",
    "ImportSummary",
    "SuccessScore",
    "TrajectoryImportError",
    "import_paths",
    "import_sample",
    "parse_mapping",
]

MODULES: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        agenther,
        browsergym,
        toolbench,
        taubench,
        message_logs,
        swe_agent,
        otel,
        langfuse,
        langsmith,
        anthropic,
        openai_responses,
    )
}
FORMATS = list(MODULES)
# The --map keys each format reads (``role`` stands for every ``role.VALUE``).
MAP_KEYS_BY_FORMAT = {name: getattr(m, "MAP_KEYS", ()) for name, m in MODULES.items()}
MAP_KEYS = sorted({key for keys in MAP_KEYS_BY_FORMAT.values() for key in keys})
SCORE_FORMATS = (langfuse.NAME, langsmith.NAME)
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample"
SAMPLE_PATHS = [
    SAMPLE_DIR / "agenther.jsonl",
    SAMPLE_DIR / "browsergym",
    SAMPLE_DIR / "tau-bench.json",
]

Progress = Callable[[int, int], None]


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["goal=question", "role.Orchestrator (thought)=assistant", ...]`` as a dict; a bad
    item raises naming it. A role value may hold spaces, parentheses and even "=": a
    ``role.`` item is split at its last "="."""
    mapping: dict[str, str] = {}
    for item in items:
        is_role = item.strip().startswith("role.")
        key, sep, field = item.rpartition("=") if is_role else item.partition("=")
        key, field = (key if is_role else key.strip()), field.strip()
        if not sep or not key.strip() or not field:
            raise TrajectoryImportError("--map", f"{item!r} is not KEY=FIELD (e.g. goal=question)")
        if is_role:
            key = "role." + key.strip()[len("role.") :]
            if key == "role." or field not in CHAT_ROLES:
                raise TrajectoryImportError(
                    "--map", f"{item!r}: use role.VALUE=ROLE, ROLE one of {', '.join(CHAT_ROLES)}"
                )
        elif key not in MAP_KEYS or key == "role":
            keys = ", ".join(k for k in MAP_KEYS if k != "role")
            raise TrajectoryImportError(
                "--map", f"unknown key {key!r} in {item!r}: use one of {keys} or role.VALUE"
            )
        mapping[key] = field
    return mapping


def import_paths(
    paths: Iterable[str | Path],
    dataset_name: str,
    fmt: str = "auto",
    mapping: dict[str, str] | None = None,
    progress: Progress | None = None,
    success_score: str = "",
    *,
    workdir: Path | None = None,
) -> ImportSummary:
    """Imports files, folders and archives into the dataset (created on demand), one unit at a
    time. Archives are unpacked within the limits into a folder under ``workdir`` (default: the
    system's temporary folder) that is removed afterwards; errors and ``source_file`` name a
    file inside one as ``archive.zip: member/path``.

    ``success_score`` is ``NAME>=VALUE`` (``--success-score``). Raises TrajectoryImportError
    (file, record, field) on bad input; the unit at fault and every unit after it are not
    imported.
    """
    options = ImportOptions(
        mapping=mapping or {},
        success_score=SuccessScore.parse(success_score) if success_score.strip() else None,
    )
    if fmt != "auto" and fmt not in MODULES:
        raise TrajectoryImportError(
            "--format", f"unknown format {fmt!r}: use auto or one of {', '.join(FORMATS)}"
        )
    if not dataset_name or not dataset_name.strip():
        raise TrajectoryImportError("--dataset", "a dataset name is required")
    with unpacked([Path(p) for p in paths], workdir) as files:
        try:
            units = plan(files.paths, fmt, options.mapping)
            return _import_units(units, dataset_name.strip(), options, progress, files.shown)
        except TrajectoryImportError as err:
            err.path, err.message = files.shown(err.path), files.shown(err.message)
            err.args = (str(err),)
            raise


def _import_units(
    units: list[Unit],
    dataset_name: str,
    options: ImportOptions,
    progress: Progress | None,
    shown: Callable[[str], str],
) -> ImportSummary:
    names = sorted({module.NAME for module, _, _ in units})
    _check_options(options, names)
    summary = ImportSummary(dataset=dataset_name, format="+".join(names))
    for done, (module, unit, why) in enumerate(units, 1):
        try:
            _import_unit(summary, module, unit, why, options, shown(str(unit)))
        except TrajectoryImportError as err:
            if summary.files:
                err.message += (
                    f" (nothing from this file was imported; the {len(summary.files)} file(s) "
                    "before it were: run again once it is fixed, what is there already is skipped)"
                )
            raise
        if progress:
            progress(done, len(units))
    return summary


def _check_options(options: ImportOptions, names: list[str]) -> None:
    """Every --map key and --success-score must mean something to every format imported."""
    for key, field in options.mapping.items():
        base = "role" if key.startswith("role.") else key
        readers = [n for n, keys in MAP_KEYS_BY_FORMAT.items() if base in keys]
        if any(name not in readers for name in names):
            raise TrajectoryImportError(
                "--map",
                f"{key}={field} applies to the {', '.join(readers)} format(s) only "
                f"(these paths are {', '.join(names)})",
            )
    if options.success_score and any(name not in SCORE_FORMATS for name in names):
        raise TrajectoryImportError(
            "--success-score",
            f"applies to Langfuse scores and LangSmith feedback only (these paths are "
            f"{', '.join(names)})",
        )


Unit = tuple[ModuleType, Path, str]


def plan(paths: Iterable[str | Path], fmt: str, mapping: dict[str, str]) -> list[Unit]:
    """Every unit to import, with its importer and why it was chosen: files, and BrowserGym
    task folders."""
    units: list[Unit] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise TrajectoryImportError(path, "no such file or folder")
        if fmt == browsergym.NAME:
            units += [(browsergym, unit, "--format browsergym") for unit in browsergym.units(path)]
        elif fmt != "auto":
            units += [(MODULES[fmt], file, f"--format {fmt}") for file in _files(path)]
        else:
            found = _detected_units(path, mapping)
            if not found:
                raise TrajectoryImportError(path, NO_FILES)
            units += found
    return units


def _detected_units(path: Path, mapping: dict[str, str]) -> list[Unit]:
    """``--format auto`` on a file or folder: each file by its own format, and each BrowserGym
    results folder (which are made of files no other format reads) as its task folders, so one
    folder may hold several formats."""
    if path.is_file():
        name, why = detect(path, mapping)
        return [(MODULES[name], path, why)]
    if _is_results(path):
        return [(browsergym, unit, "a BrowserGym task folder") for unit in browsergym.units(path)]
    units: list[Unit] = []
    for child in sorted(path.iterdir()):
        if child.is_dir() or child.suffix.lower() in SUFFIXES:
            units += _detected_units(child, mapping)
    return units


def _is_results(path: Path) -> bool:
    return browsergym.is_task_folder(path) or any(
        browsergym.is_task_folder(p) for p in path.iterdir()
    )


SUFFIXES = (".json", ".jsonl", ".ndjson", ".traj", ".yaml", ".yml")
NO_FILES = "no .json, .jsonl, .traj or .yaml file in this folder"


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        raise TrajectoryImportError(path, NO_FILES)
    return files


def _import_unit(
    summary: ImportSummary,
    module: ModuleType,
    unit: Path,
    why: str,
    options: ImportOptions,
    source_file: str,
) -> None:
    try:
        records: list[Parsed | Skipped] = module.parse(unit, options)
    except RecursionError:
        # JSON inside a field (tool arguments, an answer) nested beyond what Python can read.
        raise TrajectoryImportError(unit, too_deep_message(to_read=True)) from None
    result = save_unit(summary.dataset, records, source_format=module.NAME, source_file=source_file)
    summary.add(FileReport(path=source_file, format=module.NAME, why=why), result)


def import_sample(dataset_name: str = "sample") -> ImportSummary:
    """The bundled sample (relabel/sample/), as ``make demo`` and the tests use it."""
    return import_paths(SAMPLE_PATHS, dataset_name)
