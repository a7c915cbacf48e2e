"""BrowserGym / AgentLab WebArena results: one folder per task with ``steps_info_K.json`` and
``summary_info.json``.

Step file K holds the observation the agent saw at K, the action it chose (``<think>`` thought,
then the action code) and the reward of action K-1. So action K's result is step file K+1's
observation, and the last step file's action never ran (kept in metadata, not as a step).
Observations are the accessibility tree text; the pruned HTML stays only in the raw record.
``summary_info.json`` gives cum_reward (1 = success; fractional = partial credit, a failure that
keeps its reward) and err_msg (a crash). A crash before the first observation has no goal: it is
skipped with its reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from relabel.importers.base import (
    ImportOptions,
    Parsed,
    Skipped,
    TrajectoryImportError,
    load_json,
)
from relabel.models import Step

NAME = "browsergym"
STEP_FILE = re.compile(r"^steps_info_(\d+)\.json$")
# Image arrays and the like: megabytes of pixels nobody relabels from.
BLOB_KEYS = {
    "screenshot",
    "som_screenshot",
    "screenshots",
    "extra_element_properties",
    "dom_object",
}
# BrowserGym's action functions and their parameter names, to name positional arguments.
PARAMS = {
    "click": ["bid", "button", "modifiers"],
    "dblclick": ["bid", "button", "modifiers"],
    "fill": ["bid", "value"],
    "press": ["bid", "key_comb"],
    "select_option": ["bid", "options"],
    "hover": ["bid"],
    "focus": ["bid"],
    "clear": ["bid"],
    "check": ["bid"],
    "uncheck": ["bid"],
    "upload_file": ["bid", "file"],
    "drag_and_drop": ["from_bid", "to_bid"],
    "scroll": ["delta_x", "delta_y"],
    "goto": ["url"],
    "tab_focus": ["index"],
    "send_msg_to_user": ["text"],
    "report_infeasible": ["reason"],
    "noop": ["wait_ms"],
    "keyboard_press": ["key"],
    "keyboard_type": ["text"],
    "mouse_click": ["x", "y", "button"],
}


def is_task_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "summary_info.json").is_file() or any(_step_files(path)))


def units(path: Path) -> list[Path]:
    """A task folder, or every task folder inside a results folder."""
    if is_task_folder(path):
        return [path]
    found = sorted((p for p in path.iterdir() if is_task_folder(p)), key=_natural)
    if not found:
        raise TrajectoryImportError(
            path, "no BrowserGym task folder here (summary_info.json / steps_info_K.json)"
        )
    return found


def _natural(path: Path) -> tuple[str, int]:
    match = re.search(r"(\d+)$", path.name)
    return (path.name.rstrip("0123456789"), int(match.group(1)) if match else -1)


def _step_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if STEP_FILE.match(p.name)]
    return sorted(files, key=lambda p: int(STEP_FILE.match(p.name).group(1)))


def parse(folder: Path, options: ImportOptions) -> list[Parsed | Skipped]:
    summary_path = folder / "summary_info.json"
    summary = load_json(summary_path) if summary_path.is_file() else {}
    if not isinstance(summary, dict):
        raise TrajectoryImportError(summary_path, "must be a JSON object")
    files = _step_files(folder)
    infos = [_load_step(p) for p in files]
    raw = {"summary_info": summary, "steps_info": [_without_blobs(i) for i in infos]}
    err = summary.get("err_msg") or ""
    if not infos:
        why = _first_line(err) or "no step file"
        return [Skipped(folder.name, f"crashed before its first observation: {why}")]
    goal = _goal(infos[0], files[0])
    executed = infos[:-1]  # the last file's action never ran
    steps = [_step(t, info, infos[t + 1], files[t]) for t, info in enumerate(executed)]
    cum_reward = summary.get("cum_reward", infos[-1].get("reward"))
    reward = float(cum_reward) if cum_reward is not None else None
    success = reward is not None and reward >= 1.0 and not err
    return [
        Parsed(
            external_id=folder.name,
            goal=goal,
            steps=steps,
            success=success,
            reward=reward,
            raw_label=f"cum_reward={cum_reward}" + ("; err_msg" if err else ""),
            final_answer=_final_answer(steps),
            failure_reason=_failure_reason(err, reward, success),
            metadata=_metadata(folder, summary, infos),
            raw=raw,
        )
    ]


def _load_step(path: Path) -> dict[str, Any]:
    info = load_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("obs"), dict):
        raise TrajectoryImportError(path, "a step file must be an object with an obs object")
    return info


def _without_blobs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_blobs(v) for k, v in value.items() if k not in BLOB_KEYS}
    return value


def _goal(info: dict[str, Any], path: Path) -> str:
    obs = info["obs"]
    goal = obs.get("goal")
    if not goal and isinstance(obs.get("goal_object"), list):
        goal = "\n".join(str(part.get("text", "")) for part in obs["goal_object"])
    if not isinstance(goal, str) or not goal.strip():
        raise TrajectoryImportError(path, "missing goal", field="obs.goal")
    return goal


def _step(t: int, info: dict[str, Any], after: dict[str, Any], path: Path) -> Step:
    thought, code = split_action(info.get("action") or "")
    action, action_input = parse_action(code)
    return Step.build(
        index=t,
        thought=thought,
        action=action,
        action_input=action_input,
        observation=observation_text(after["obs"]),
        metadata={
            "code": code,
            "reward": after.get("reward"),
            "url": _url(after["obs"]),
            "step_file": path.name,
        },
    )


def split_action(text: str) -> tuple[str, str]:
    """(thought, action code) from ``<think>..</think><action>```code```</action>`` or bare code."""
    think = re.search(r"<think>(.*?)(?:</think>|$)", text, re.S)
    act = re.search(r"<action>(.*?)(?:</action>|$)", text, re.S)
    body = act.group(1) if act else text
    fenced = re.findall(r"```(?:python)?\s*(.*?)```", body, re.S)
    code = fenced[-1].strip() if fenced else body.strip()
    if think:
        thought = think.group(1).strip()
    elif act or fenced:
        thought = text[: text.find("<action>") if act else text.find("```")].strip()
    else:
        thought = ""
    return thought, code


def parse_action(code: str) -> tuple[str, dict[str, Any]]:
    """``fill('162', 'CMU')`` -> ("fill", {"bid": "162", "value": "CMU"}); other code is kept."""
    try:
        tree = ast.parse(code.strip())
    except SyntaxError:
        return ("code" if code else ""), ({"code": code} if code else {})
    calls = [
        n.value for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
    ]
    if len(calls) != 1 or len(tree.body) != 1 or not isinstance(calls[0].func, ast.Name):
        return "code", {"code": code}
    call = calls[0]
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except ValueError:
        return call.func.id, {"code": code}
    names = PARAMS.get(call.func.id, [])
    named = {names[i] if i < len(names) else f"arg{i}": a for i, a in enumerate(args)}
    return call.func.id, {**named, **kwargs}


def observation_text(obs: dict[str, Any]) -> str:
    """What the agent got back: any action error, the page it is on, its accessibility tree."""
    parts = []
    if obs.get("last_action_error"):
        parts.append(f"Action error: {obs['last_action_error']}")
    url = _url(obs)
    if url:
        parts.append(f"URL: {url}")
    parts.append(obs.get("axtree_txt") or "")
    return "\n".join(parts)


def _url(obs: dict[str, Any]) -> str:
    urls = obs.get("open_pages_urls") or []
    active = obs.get("active_page_index")
    index = active[0] if isinstance(active, list) and active else active
    if isinstance(index, int) and 0 <= index < len(urls):
        return str(urls[index])
    return str(obs.get("url") or (urls[0] if urls else ""))


def _final_answer(steps: list[Step]) -> str:
    for step in reversed(steps):
        if step.action == "send_msg_to_user":
            return str(step.action_input.get("text", ""))
        if step.action == "report_infeasible":
            return f"Infeasible: {step.action_input.get('reason', '')}"
    return ""


def _failure_reason(err: str, reward: float | None, success: bool) -> str:
    if err:
        return f"crashed: {_first_line(err)}"
    if success:
        return ""
    if reward:
        return f"partial credit: cum_reward {reward:g}"
    return "cum_reward 0"


def _first_line(err: str) -> str:
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    # BrowserGym's first line is a generic "Exception uncaught ..."; the next ones say what.
    if len(lines) > 1 and lines[0].startswith("Exception uncaught"):
        lines = lines[1:]
    return " ".join(lines[:2])[:300]


def _metadata(folder: Path, summary: dict[str, Any], infos: list[dict[str, Any]]) -> dict:
    task = re.search(r"(\d+)$", folder.name)
    meta: dict[str, Any] = {
        "benchmark": "webarena",
        "task_id": int(task.group(1)) if task else folder.name,
        "n_steps": summary.get("n_steps"),
        "cum_reward": summary.get("cum_reward"),
        "terminated": summary.get("terminated"),
        "truncated": summary.get("truncated"),
        "initial_url": _url(infos[0]["obs"]),
        "initial_observation": observation_text(infos[0]["obs"])[: Step.EXCERPT_CHARS],
    }
    if summary.get("err_msg"):
        meta["err_msg"] = summary["err_msg"]
    last_action = infos[-1].get("action")
    if last_action:
        meta["action_not_run"] = split_action(last_action)[1]
    return meta
