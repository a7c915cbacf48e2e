#!/usr/bin/env python
"""Hostile and broken input, measured: an archive bomb and the bad-input cases of issue 12.

    .venv/bin/python bench/hostile_input.py [--bomb-mb 400] [--database-url URL]

Builds, in a temporary folder: a zip and a tar.gz that are each ~0.4 MB and unpack to --bomb-mb
MB; a JSONL file with NUL characters; a JSON file nested 100,000 deep; a JSONL record with a field
nested 100,000 deep. Each is imported in a child process of its own (the import_trajectories
command, and the bomb also as an admin's upload through the UI's view and task), in a throwaway
SQLite database unless --database-url is given, and the child reports its own peak resident
memory (ru_maxrss). Prints one JSON object per case: outcome, message, seconds, peak MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEEP = 100_000

CHILD = r"""
import io, json, resource, sys, traceback
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
import benchdjango
benchdjango.setup_django({database_url!r}, "hostile")
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test.utils import override_settings
mode, path = {mode!r}, {path!r}
call_command("migrate", verbosity=0)
result = {{}}
try:
    if mode == "command":
        out = io.StringIO()
        call_command("import_trajectories", path, "--dataset", "hostile", "--json", stdout=out)
        result = {{"outcome": "imported", "message": out.getvalue().strip().splitlines()[-1]}}
    else:
        from pathlib import Path
        from django.contrib.auth.models import User
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django.test import Client
        from relabel.models import ImportJob
        from relabel.roles import grant_role
        admin = User.objects.create_user("bench-admin")
        grant_role(admin, "admin")
        client = Client()
        client.force_login(admin)
        uploads = Path(path).parent / "uploads"
        with override_settings(UPLOAD_ROOT=uploads, ALLOWED_HOSTS=["testserver"]):
            data = {{"file": SimpleUploadedFile(Path(path).name, Path(path).read_bytes()),
                     "dataset": "hostile", "format": "auto"}}
            response = client.post("/imports/", data)
        job = ImportJob.objects.filter().first()
        if job is None:
            raise RuntimeError(f"no import job: HTTP {{response.status_code}}")
        left = [str(p) for p in uploads.rglob("*")] if uploads.exists() else []
        result = {{"outcome": job.status, "message": job.error or json.dumps(job.summary),
                   "left_on_disk": len(left)}}
except CommandError as exc:
    result = {{"outcome": "refused", "message": str(exc)}}
except BaseException as exc:
    result = {{"outcome": "crashed", "message": traceback.format_exc()[-600:]}}
result["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print("RESULT " + json.dumps(result))
"""


def zip_bomb(path: Path, megabytes: int) -> Path:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("results/big.jsonl", "w") as member,
    ):
        for _ in range(megabytes):
            member.write(b"\n" * 2**20)
    return path


def tar_bomb(path: Path, megabytes: int) -> Path:
    source = path.parent / "big.jsonl"
    with source.open("wb") as f:
        f.truncate(megabytes * 2**20)  # zeros, without holding them in memory
    with tarfile.open(path, "w:gz", compresslevel=9) as archive:
        archive.add(source, arcname="results/big.jsonl")
    source.unlink()
    return path


def bad_inputs(folder: Path) -> dict[str, Path]:
    record = {
        "trajectory_id": "nul",
        "original_prompt": "Find\u0000 the file",
        "steps": [
            {"thought": "", "action_name": "cat", "action_input": {}, "observation": "\u0000" * 3}
        ],
    }
    nul = folder / "nul.jsonl"
    nul.write_text(json.dumps(record) + "\n")
    deep = folder / "deep.json"
    deep.write_text("[" * DEEP + "]" * DEEP)
    deep_field = folder / "deep-field.jsonl"
    nested = '{"a": ' * DEEP + "1" + "}" * DEEP
    ok = {"trajectory_id": "ok", "original_prompt": "x", "steps": []}
    deep_field.write_text(
        json.dumps(ok) + "\n" + f'{{"trajectory_id": "d", "original_prompt": "x", "steps": '
        f'[{{"action_name": "a", "action_input": {nested}}}]}}\n'
    )
    return {"nul.jsonl": nul, "deep.json": deep, "deep-field.jsonl": deep_field}


def measure(mode: str, path: Path, database_url: str) -> dict:
    code = CHILD.format(
        root=str(ROOT),
        bench=str(ROOT / "bench"),
        database_url=database_url,
        mode=mode,
        path=str(path),
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    seconds = round(time.monotonic() - started, 2)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    result = json.loads(line[7:]) if line else {"outcome": "no result", "message": done.stderr}
    return {"case": path.name, "via": mode, "size_kb": round(path.stat().st_size / 1024, 1),
            "seconds": seconds, **result}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-mb", type=int, default=400)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        database_url = args.database_url or f"sqlite:///{folder / 'bench.sqlite3'}"
        cases = [
            ("command", zip_bomb(folder / "bomb.zip", args.bomb_mb)),
            ("upload", folder / "bomb.zip"),
            ("command", tar_bomb(folder / "bomb.tar.gz", args.bomb_mb)),
        ]
        cases += [("command", path) for path in bad_inputs(folder).values()]
        for mode, path in cases:
            if not args.database_url:
                (folder / "bench.sqlite3").unlink(missing_ok=True)
            print(json.dumps(measure(mode, path, database_url)), flush=True)


if __name__ == "__main__":
    main()
