"""Stage 2: outcome extraction. What the agent actually achieved, grounded to step numbers.

Whatever the backend says, an achievement is only kept when it cites steps that exist; the ones
that cite none are kept aside as ``ungrounded`` (visible, never used as evidence).
"""

from __future__ import annotations

from typing import Any

from relabel.backends import Backend, ItemContext


def extract_outcome(backend: Backend, ctx: ItemContext) -> dict[str, Any]:
    raw = backend.extract(ctx)
    valid = ctx.step_indices
    achievements, ungrounded = [], []
    for achievement in raw.get("achievements", []):
        steps = sorted({int(s) for s in achievement.get("steps", []) if int(s) in valid})
        entry = {"text": str(achievement.get("text", "")).strip(), "steps": steps}
        if entry["text"] and steps:
            achievements.append(entry)
        elif entry["text"]:
            ungrounded.append(entry["text"])
    return {
        "achievements": achievements,
        "key_observations": [str(o) for o in raw.get("key_observations", [])],
        "limitations": [str(x) for x in raw.get("limitations", [])],
        "ungrounded": ungrounded,
    }
