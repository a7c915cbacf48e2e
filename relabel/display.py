"""What the pages show of candidates, trajectories, runs and imports: plain strings in plain
structures, built here so that templates only lay them out.

Templates escape everything; nothing from a trajectory is ever marked safe. Markdown in a message
is shown as text: its line breaks are kept and its fenced code blocks become code blocks (still
escaped text), nothing is turned into HTML.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, FloatField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Floor, Least

from relabel.chat import step_messages
from relabel.llm.prompts import cited_steps
from relabel.models import Candidate, Run, RunCounts, RunItem, Step, Trajectory

# Observations and arguments longer than this (characters or lines) start collapsed.
LONG_CHARS = 600
LONG_LINES = 12
PREVIEW_CHARS = 160
# Below this share of words in common (difflib's ratio over words), a word diff of the two goals
# is mostly strikethrough: the page shows both goals as plain text and no diff at all.
DIFF_MIN_SHARED = 0.4
# Digits 1-9 pick an alternative goal: no more are offered.
MAX_ALTERNATIVES = 9

# Who answers the agent, named for what they are in each benchmark.
USER_LABELS = {"tau-bench": "Customer"}  # tau-bench's user is a simulated airline/retail customer
TOOL_LABELS = {"browsergym": "Web page"}  # BrowserGym's observation is the page after the action


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``1 rater``, ``2 raters``, ``0 trajectories`` (with ``many`` for irregular words)."""
    return f"{count:,} {singular if count == 1 else (many or singular + 's')}"


# -- goals ---------------------------------------------------------------------------------------


@dataclass
class DiffPart:
    kind: str  # "same", "del" (only in the original) or "ins" (only in the hindsight goal)
    text: str


def _words(text: str) -> list[str]:
    # Each word keeps its surrounding space, so a run of changed words reads as one phrase.
    return re.findall(r"\s*\S+\s*", text)


def word_diff(original: str, hindsight: str) -> tuple[list[DiffPart], list[DiffPart]]:
    """Both goals split into parts, each marked same / deleted / inserted, word by word."""
    a, b = _words(original), _words(hindsight)
    left: list[DiffPart] = []
    right: list[DiffPart] = []
    # Words are compared without their spaces ("supplier" at the end of one goal is the same
    # word as "supplier " inside the other); the parts keep the text as written.
    keys_a, keys_b = [w.strip() for w in a], [w.strip() for w in b]
    matcher = difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            left.append(DiffPart("same", "".join(a[i1:i2])))
            right.append(DiffPart("same", "".join(b[j1:j2])))
            continue
        if i2 > i1:
            left.append(DiffPart("del", "".join(a[i1:i2])))
        if j2 > j1:
            right.append(DiffPart("ins", "".join(b[j1:j2])))
    return left, right


def shared_words(original: str, hindsight: str) -> float:
    """How much the two goals have in common, 0..1 (difflib's ratio over case-folded words)."""
    a = [w.strip().casefold() for w in _words(original)]
    b = [w.strip().casefold() for w in _words(hindsight)]
    return difflib.SequenceMatcher(a=a, b=b, autojunk=False).ratio()


def goal_diff(original: str, hindsight: str) -> dict[str, Any]:
    """The word diff when the goals share enough words to make it readable, else none."""
    if shared_words(original, hindsight) < DIFF_MIN_SHARED:
        return {"show_diff": False}
    left, right = word_diff(original, hindsight)
    return {"show_diff": True, "original_diff": left, "hindsight_diff": right}


@dataclass
class Alternative:
    number: int  # the digit that picks it on the review page
    attempt: int  # the relabeler's attempt number (recorded as edit source "attempt:N")
    goal: str
    refused: str  # why the pipeline set it aside, "" when it did not


def alternatives(candidate: Candidate) -> list[Alternative]:
    """The relabeler's other attempts (Candidate.attempts), each a goal the rater may pick."""
    seen = {candidate.hindsight_goal.strip().casefold()}
    out: list[Alternative] = []
    for entry in candidate.attempts or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("attempt"), int):
            continue
        goal = str(entry.get("goal") or "").strip()
        if not goal or goal.casefold() in seen:
            continue
        seen.add(goal.casefold())
        refused = str(entry.get("refused") or "")
        out.append(Alternative(len(out) + 1, entry["attempt"], goal, refused))
    return out[:MAX_ALTERNATIVES]


def attempt_goal(candidate: Candidate, attempt: int) -> str | None:
    """The goal of the relabeler's attempt number ``attempt``, if it is one offered."""
    return next((a.goal for a in alternatives(candidate) if a.attempt == attempt), None)


# -- text: markdown as text, JSON pretty-printed --------------------------------------------------


@dataclass
class Block:
    kind: str  # "text" (line breaks kept) or "code" (a fenced code block)
    text: str
    lang: str = ""


FENCE = re.compile(r"^```([^\n`]*)\n(.*?)(?:\n```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)


def message_blocks(text: str) -> list[Block]:
    """A message as text blocks and fenced code blocks, in order; all of it plain text."""
    blocks: list[Block] = []
    position = 0
    for match in FENCE.finditer(text):
        before = text[position : match.start()].strip("\n")
        if before.strip():
            blocks.append(Block("text", before))
        blocks.append(Block("code", match.group(2), match.group(1).strip()))
        position = match.end()
    rest = text[position:].strip("\n")
    if rest.strip():
        blocks.append(Block("text", rest))
    return blocks


def pretty_json(value: Any) -> tuple[str, bool]:
    """``value`` as indented JSON when it is JSON (or a string holding JSON), else as it is;
    and whether it was JSON."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] not in ("{", "["):
            return value, False
        try:
            value = json.loads(stripped)
        except ValueError:
            return value, False
    return json.dumps(value, indent=2, ensure_ascii=False), True


def pretty_arguments(arguments: Any) -> str:
    """Tool-call arguments as indented JSON when they parse, else verbatim."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    return json.dumps(arguments, indent=2, ensure_ascii=False)


def is_long(text: str) -> bool:
    return len(text) > LONG_CHARS or text.count("\n") >= LONG_LINES


def preview(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first[:PREVIEW_CHARS] + ("…" if len(first) > PREVIEW_CHARS else "")


# -- steps ---------------------------------------------------------------------------------------


@dataclass
class Call:
    name: str
    arguments: str  # indented JSON when it parses

    @property
    def is_long(self) -> bool:
        return is_long(self.arguments)


@dataclass
class Reply:
    """What answered the agent in a step: a tool or page (``role`` "tool") or a person."""

    role: str  # "tool" or "user"
    label: str  # Tool, Web page, Customer, User, or the name of who answered
    detail: str  # the tool's name, the page's URL...
    text: str
    raw: str  # as recorded (the preview's source: pretty JSON starts with a lone "{")
    is_json: bool
    chars: int  # the whole observation's length
    shown: int  # how much of it is stored in the excerpt shown here
    truncated: bool

    @property
    def is_long(self) -> bool:
        return is_long(self.text)

    @property
    def preview(self) -> str:
        return preview(self.raw)

    @property
    def blocks(self) -> list[Block]:
        return [Block("code", self.text)] if self.is_json else message_blocks(self.text)


@dataclass
class StepView:
    index: int
    speaker: str  # "Agent", or the agent's own name in a multi-agent log
    message: list[Block]
    calls: list[Call] = field(default_factory=list)
    reply: Reply | None = None
    thought: str = ""  # the agent's text as recorded (what the consistency check reads)
    # The consistency check's findings marked in the agent's text and in a user's reply
    # (relabel.consistency_view sets them; empty: shown as blocks).
    marked_thought: list[Any] = field(default_factory=list)
    marked_reply: list[Any] = field(default_factory=list)

    @property
    def observation(self) -> str:
        return self.reply.raw if self.reply else ""

    @property
    def message_label(self) -> str:
        # Beside a tool call the text is the agent's reasoning; alone, it speaks to the user.
        return "thought" if self.calls else ""


def reply_view(step: Step, fmt: str, role: str, text: str) -> Reply:
    observed_from = str(getattr(step, "observed_from", None) or "")
    if role == "user":
        label, detail = observed_from or USER_LABELS.get(fmt, "User"), ""
    else:
        label = TOOL_LABELS.get(fmt, "Tool")
        detail = observed_from or step.action
    pretty, was_json = pretty_json(text) if role == "tool" else (text, False)
    return Reply(
        role=role,
        label=label,
        detail=detail,
        text=pretty,
        raw=text,
        is_json=was_json,
        chars=step.observation_chars,
        shown=len(step.observation),
        # observation_full is left unloaded (it can be megabytes): the lengths tell the same.
        truncated=step.observation_chars > len(step.observation),
    )


def step_view(step: Step, fmt: str = "") -> StepView:
    """One step as the one messages conversion (relabel.chat) sees it."""
    assistant, *replies = step_messages(step)
    calls = [
        Call(c["function"]["name"], pretty_arguments(c["function"]["arguments"]))
        for c in assistant.get("tool_calls", [])
    ]
    reply = None
    if replies and replies[0]["content"]:
        role = "tool" if replies[0]["role"] == "tool" else "user"
        reply = reply_view(step, fmt, role, replies[0]["content"])
    return StepView(
        index=step.index,
        speaker=str(getattr(step, "speaker", None) or "Agent"),
        message=message_blocks(assistant["content"]),
        calls=calls,
        reply=reply,
        thought=assistant["content"],
    )


def trajectory_steps(trajectory: Trajectory) -> list[StepView]:
    steps = (
        trajectory.ordered_steps()
        .defer("observation_full", "metadata")
        # Only the few metadata keys the page names people and pages by, not the whole field.
        .annotate(
            speaker=KT("metadata__speaker"),
            observed_from=KT("metadata__observed_from"),
        )
    )
    return [step_view(s, trajectory.source_format) for s in steps]


@dataclass
class Achievement:
    text: str
    steps: list[int]


def achievements(candidate: Candidate, step_count: int) -> list[Achievement]:
    """The outcome's achievements with the steps that ground them (unknown steps dropped)."""
    out = []
    for entry in (candidate.item.outcome or {}).get("achievements") or []:
        if isinstance(entry, str):
            entry = {"text": entry, "steps": []}
        if not isinstance(entry, dict):
            continue
        steps = [s for s in entry.get("steps") or [] if isinstance(s, int) and 0 <= s < step_count]
        out.append(Achievement(text=str(entry.get("text", "")), steps=sorted(set(steps))))
    return out


def judge_rows(candidate: Candidate) -> list[dict[str, Any]]:
    rows = []
    for judge in candidate.judges or []:
        if isinstance(judge, dict):
            rows.append(
                {
                    "name": str(judge.get("name") or judge.get("model") or "judge"),
                    "model": str(judge.get("model", "")),
                    "accept": bool(judge.get("accept")),
                    "confidence": judge.get("confidence"),
                    "reason": str(judge.get("reason", "")),
                }
            )
    return rows


def judges_read(candidate: Candidate, steps: list[StepView]) -> dict[str, Any] | None:
    """What the candidate's model judges read: a reviewer weighs their verdicts by it
    (relabel.llm.prompts builds their prompts; the rules panel reads every step). ``steps``:
    the numbers of the steps they read in full, or None for the whole run."""
    run = candidate.run
    if run.backend != "openai" or not candidate.judges:
        return None
    if run.config.get("judge_view", "run") != "evidence":  # runs frozen before the key: "run"
        return {"steps": None}
    shown, _ = cited_steps(steps, candidate.item.outcome or {})
    return {"steps": [step.index for step in shown]}


def trajectory_display(trajectory: Trajectory) -> dict[str, Any]:
    """The trajectory as every item shows it, blind ones included."""
    return {
        "trajectory": trajectory,
        "steps": trajectory_steps(trajectory),
        "system_blocks": message_blocks(trajectory.system_prompt),
        "final_blocks": message_blocks(trajectory.final_answer),
    }


def candidate_display(candidate: Candidate) -> dict[str, Any]:
    """Everything the full (non-blind) view of a candidate shows: the candidate page and the
    queue's curation items."""
    context = trajectory_display(candidate.trajectory)
    return {
        **context,
        **goal_diff(candidate.trajectory.goal, candidate.hindsight_goal),
        "candidate": candidate,
        "hindsight_goal": candidate.hindsight_goal,
        "alternatives": alternatives(candidate),
        "achievements": achievements(candidate, len(context["steps"])),
        "judges": judge_rows(candidate),
        "judges_read": judges_read(candidate, context["steps"]),
    }


# -- runs ----------------------------------------------------------------------------------------


@dataclass
class Segment:
    """One part of a stacked bar: its share of the whole and where it starts (percent)."""

    key: str
    label: str
    count: int
    share: float
    start: float


def stacked(parts: list[tuple[str, str, int]]) -> list[Segment]:
    total = sum(count for _, _, count in parts)
    segments, start = [], 0.0
    for key, label, count in parts:
        share = 100 * count / total if total else 0.0
        segments.append(Segment(key, label, count, round(share, 2), round(start, 2)))
        start += share
    return segments


def run_charts(counts: RunCounts) -> dict[str, list[Segment]]:
    """What happened to a run's trajectories, and how the gate split its candidates."""
    status = counts.by_status
    items = [
        ("success", "succeeded (kept as baseline)", status.get(RunItem.Status.SUCCESS, 0)),
        ("candidate", "relabeled: a candidate goal", status.get(RunItem.Status.CANDIDATE, 0)),
        ("none", "no acceptable goal found", status.get(RunItem.Status.NO_CANDIDATE, 0)),
        ("discarded", "discarded (severe failure)", counts.discarded),
        ("set-aside", "outcome unknown, set aside", counts.set_aside),
        ("error", "errors", counts.errors),
        ("pending", "waiting", status.get(RunItem.Status.PENDING, 0)),
    ]
    gates = [
        ("auto", "auto-accepted", counts.auto_accepted),
        ("review", "left to reviewers", counts.needs_review),
        ("rejected", "rejected by the gate", counts.rejected),
    ]
    return {"items": stacked(items), "gates": stacked(gates)}


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 4 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def run_figures(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The run summary's calls, tokens, cost and time as (label, words) rows."""
    cached = summary["cached_calls"]
    per_pair = summary["cost_per_accepted_pair"]
    return [
        ("Model calls", f"{plural(summary['llm_calls'], 'call')} ({cached:,} from the cache)"),
        ("Prompt tokens", f"{summary['prompt_tokens']:,}"),
        ("Completion tokens", f"{summary['completion_tokens']:,}"),
        ("Cost", f"${summary['cost_usd']:,.4f}"),
        (
            "Cost per approved pair",
            "no approved pair yet" if per_pair is None else f"${per_pair:,.4f}",
        ),
        ("Time", duration(summary["wall_seconds"])),
    ]


# -- imports -------------------------------------------------------------------------------------


def import_result(summary: dict[str, Any]) -> list[str]:
    """An import's summary as short sentences (what the import page shows instead of a dict)."""
    if not summary:
        return []
    imported = summary.get("imported", 0)
    lines = [
        f"{plural(imported, 'trajectory', 'trajectories')} imported "
        f"({plural(summary.get('successes', 0), 'success', 'successes')}, "
        f"{plural(summary.get('failures', 0), 'failure')})"
        + (f" as {summary['format']}" if summary.get("format") else "")
        + "."
    ]
    if duplicates := summary.get("duplicates", 0):
        lines.append(
            f"{plural(duplicates, 'duplicate')} already in the dataset: left as they were."
        )
    for reason, count in (summary.get("skipped_reasons") or {}).items():
        lines.append(f"{plural(count, 'record')} skipped: {reason}.")
    return lines


# The confidence histogram's drawing area, in SVG units (the page scales the whole drawing).
PLOT_LEFT, PLOT_WIDTH, PLOT_TOP, PLOT_HEIGHT = 30.0, 380.0, 16.0, 120.0


@dataclass
class Bin:
    low: float
    high: float
    count: int
    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> float:
        return self.x + self.width / 2

    @property
    def label_y(self) -> float:
        return self.y - 3


@dataclass
class Marker:
    x: float
    label: str


def confidence_histogram(run: Run, bins: int = 10) -> dict[str, Any]:
    """The run's candidates by confidence in ``bins`` equal widths (counted by the database),
    laid out for an SVG with the gate's thresholds marked."""
    bucket = Least(
        Floor(F("confidence") * Value(float(bins))), Value(bins - 1.0), output_field=FloatField()
    )
    rows = Candidate.objects.for_run(run).annotate(bucket=bucket).values("bucket")
    counts = {int(b): n for b, n in rows.annotate(n=Count("id")).values_list("bucket", "n")}
    most = max(counts.values(), default=0) or 1
    step = PLOT_WIDTH / bins
    out = []
    for i in range(bins):
        n = counts.get(i, 0)
        height = round(PLOT_HEIGHT * n / most, 2)
        bottom = PLOT_TOP + PLOT_HEIGHT
        x = PLOT_LEFT + i * step + 2
        out.append(Bin(i / bins, (i + 1) / bins, n, x, bottom - height, step - 4, height))
    markers = [
        Marker(PLOT_LEFT + PLOT_WIDTH * run.reject_threshold, f"reject < {run.reject_threshold:g}"),
        Marker(PLOT_LEFT + PLOT_WIDTH * run.accept_threshold, f"accept ≥ {run.accept_threshold:g}"),
    ]
    ticks = [Marker(PLOT_LEFT + PLOT_WIDTH * t, f"{t:g}") for t in (0, 0.25, 0.5, 0.75, 1)]
    return {
        "bins": out,
        "markers": markers,
        "ticks": ticks,
        "total": sum(counts.values()),
        "baseline": PLOT_TOP + PLOT_HEIGHT,
        "right": PLOT_LEFT + PLOT_WIDTH,
    }


def run_configuration(run: Run) -> list[tuple[str, str]]:
    """A run's frozen configuration as (label, words) rows."""
    config = run.config
    review = run.review_settings()
    rows = [
        ("Backend", "rules (offline)" if run.backend == "rules" else run.backend),
        ("Prompt version", run.prompt_version),
        ("Accept at", f"confidence ≥ {run.accept_threshold:g}"),
        ("Reject below", f"confidence < {run.reject_threshold:g}"),
        ("Discard when", f"training weight < {config.get('severity_delta', 0):g}"),
        ("Attempts per goal", str(config.get("attempts", ""))),
    ]
    if run.backend != "rules":
        stages = config.get("stages") or {}
        rows += [(f"Model: {name}", str(s.get("model", ""))) for name, s in stages.items()]
        judges = [f"{j.get('name')} ({j.get('model')})" for j in config.get("judges") or []]
        rows.append(("Judges", ", ".join(judges) or "none"))
        read = "the whole run"  # runs frozen before the key read it
        if config.get("judge_view", "run") == "evidence":
            read = "the cited steps in full, the other steps' calls in outline"
        rows.append(("Judges read", read))
    rows += [
        ("Raters per candidate", str(review["raters_per_candidate"])),
        ("Audited share of auto-accepted", f"{100 * float(review['audit_share']):g}%"),
        ("Queue order", str(review["order"]).replace("_", " ")),
        ("Started by", run.created_by.username if run.created_by else "a command"),
    ]
    return rows
