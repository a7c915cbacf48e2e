"""Bad and hostile input through the import_trajectories command: archives it unpacks within
limits (the same as the upload's), NUL characters PostgreSQL cannot store, JSON nested far too
deep. Every case ends in a clear error naming file, record and field (or a documented repair),
never a traceback, and never a partial import."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from relabel.models import Step, Trajectory, decompress_json
from tests.importers.conftest import agenther_record, bg_step, browsergym_task, write_jsonl

pytestmark = pytest.mark.django_db

DEEP = 100_000


def run(*args: str) -> dict:
    out = io.StringIO()
    call_command("import_trajectories", *args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as error:
        run(*args)
    return str(error.value)


@pytest.fixture(autouse=True)
def own_tmp(tmp_path, monkeypatch):
    """Archives unpack into the system's temporary folder: this one, to see it is cleaned."""
    tmp = tmp_path / "system-tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)
    return tmp


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


# -- item 7: the command takes the upload's archives -------------------------------------------


def test_the_command_imports_a_tar_gz_of_a_browsergym_results_folder(tmp_path, own_tmp):
    root = tmp_path / "results"
    goal = "Find the opening hours of the bike shop"
    steps = [bg_step(0, goal, "RootWebArea 'Shops'", "click('12')"), bg_step(1, goal, "x", None)]
    browsergym_task(root, "task_7", steps)
    browsergym_task(root, "task_9", steps)
    archive = tmp_path / "webarena.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="results")
    summary = run(str(archive), "--dataset", "wa")
    assert (summary["format"], summary["imported"]) == ("browsergym", 2)
    source = Trajectory.objects.get(external_id="task_7").source_file
    assert source.startswith(f"{archive}: ") and "task_7" in source
    assert list(own_tmp.iterdir()) == []  # what it unpacked is gone


def test_the_command_imports_a_zip_of_jsonl_and_names_a_bad_member(tmp_path):
    good = (json.dumps(agenther_record("a")) + "\n").encode()
    archive = zip_of(tmp_path / "runs.zip", {"runs/a.jsonl": good})
    assert run(str(archive), "--dataset", "z")["imported"] == 1
    bad = zip_of(tmp_path / "bad.zip", {"runs/b.jsonl": good + b"{nope\n"})
    error = refused(str(bad), "--dataset", "z2")
    assert error.startswith(f"{bad}: runs/b.jsonl: line 2: not valid JSON"), error
    assert not Trajectory.objects.filter(dataset__name="z2").exists()


# -- item 4: limits, checked while unpacking ---------------------------------------------------


def test_a_zip_bomb_is_refused_by_its_compression_ratio_while_unpacking(tmp_path, own_tmp):
    bomb = zip_of(tmp_path / "bomb.zip", {"big.jsonl": b"\n" * (30 * 2**20)})
    assert bomb.stat().st_size < 100_000
    error = refused(str(bomb), "--dataset", "b")
    assert error.startswith(f"{bomb}: ") and "compression ratio" in error
    assert "AGENTHER_ARCHIVE_MAX_RATIO" in error
    assert list(own_tmp.iterdir()) == []


def test_an_archive_over_the_unpacked_size_limit_is_refused(tmp_path, settings):
    settings.AGENTHER_ARCHIVE_MAX_BYTES = 2**20
    noise = os.urandom(2 * 2**20)  # incompressible: the ratio is fine, the size is not
    archive = tmp_path / "big.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("big.jsonl")
        info.size = len(noise)
        tar.addfile(info, io.BytesIO(noise))
    error = refused(str(archive), "--dataset", "b")
    assert "unpacks to more than 1 MB" in error and "AGENTHER_ARCHIVE_MAX_MB" in error


def test_an_archive_with_too_many_members_is_refused(tmp_path, settings):
    settings.AGENTHER_ARCHIVE_MAX_MEMBERS = 5
    archive = zip_of(tmp_path / "many.zip", {f"f{i}.json": b"[]" for i in range(6)})
    error = refused(str(archive), "--dataset", "m")
    assert "more than 5 members" in error and "AGENTHER_ARCHIVE_MAX_MEMBERS" in error


def test_a_tar_with_a_link_or_a_path_outside_is_refused(tmp_path):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        link = tarfile.TarInfo("results/passwd.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    assert "results/passwd.json" in refused(str(archive), "--dataset", "l")
    outside = tmp_path / "outside.tar"
    with tarfile.open(outside, "w") as tar:
        info = tarfile.TarInfo("../evil.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"[]"))
    assert "outside" in refused(str(outside), "--dataset", "l")
    assert not (tmp_path.parent / "evil.json").exists()


def test_a_jsonl_file_is_read_line_by_line_so_a_bad_byte_is_located(tmp_path):
    path = tmp_path / "runs.jsonl"
    lines = [json.dumps(agenther_record(f"t{i}")).encode() for i in range(3)]
    path.write_bytes(lines[0] + b"\n" + lines[1] + b"\n" + b'{"x": "\xff"}\n')
    error = refused(str(path), "--dataset", "j", "--format", "agenther")
    assert error.startswith(f"{path}: line 3: not UTF-8 text"), error
    assert not Trajectory.objects.exists()


# -- item 6: NUL characters and deep nesting ----------------------------------------------------


def test_nul_characters_are_replaced_counted_and_kept_in_the_raw_record(tmp_path):
    record = agenther_record(
        "nul",
        original_prompt="Find a bike\u0000 shop",
        steps=[
            {
                "thought": "look",
                "action_name": "read\u0000file",
                "action_input": {"path\u0000": "a\u0000b"},
                "observation": "binary \u0000\u0000 data",
            }
        ],
    )
    path = write_jsonl(tmp_path, "nul.jsonl", [record, agenther_record("clean")])
    summary = run(str(path), "--dataset", "n")
    assert summary["imported"] == 2 and summary["nul_replaced"] == 6
    trajectory = Trajectory.objects.get(external_id="nul")
    assert trajectory.goal == "Find a bike\ufffd shop"
    step = Step.objects.get(trajectory=trajectory)
    assert step.action == "read\ufffdfile" and step.observation == "binary \ufffd\ufffd data"
    assert step.action_input == {"path\ufffd": "a\ufffdb"}
    assert decompress_json(trajectory.raw)["original_prompt"] == "Find a bike\u0000 shop"


def test_a_json_file_nested_100000_deep_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * DEEP + "]" * DEEP)
    for fmt in ("auto", "agenther"):
        error = refused(str(path), "--dataset", "d", "--format", fmt)
        assert error.startswith(f"{path}: ") and "nested too deeply" in error, error


def test_a_record_nested_too_deep_names_its_line_and_field_and_nothing_is_imported(tmp_path):
    path = tmp_path / "deep.jsonl"
    deep = '{"a": ' * DEEP + "1" + "}" * DEEP
    first = json.dumps(agenther_record("fine"))
    second = json.dumps(agenther_record("deep")).replace('{"query"', deep[:-1] + ', "query"', 1)
    path.write_text(first + "\n" + second + "\n")
    error = refused(str(path), "--dataset", "d", "--format", "agenther")
    assert error.startswith(f"{path}: line 2: ") and "nested too deeply" in error, error
    shallow_enough_to_parse = '{"a": ' * 300 + "1" + "}" * 300
    second = json.dumps(agenther_record("deep")).replace(
        '{"query": "bike shop open Sunday"}', shallow_enough_to_parse
    )
    path.write_text(first + "\n" + second + "\n")
    error = refused(str(path), "--dataset", "d", "--format", "agenther")
    assert error.startswith(f"{path}: line 2: field 'steps[0].action_input.a.a"), error
    assert "nested too deeply (more than 100 levels)" in error
    assert not Trajectory.objects.exists()
