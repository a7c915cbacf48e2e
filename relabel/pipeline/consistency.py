"""Stage 3b: every turn of the trajectory must fit the hindsight goal, not only the goal text.

A relabelled pair is a true demonstration only if nothing in it still pursues the task the run
failed. The agent's free text (``Step.thought``, which in chat logs such as tau-bench is also its
message to the user, and ``Trajectory.final_answer``) often restates that task ("The user needs
the full address of all international airports within 50 km..."); in conversations, later user
turns may still pursue the original scenario. This stage finds such turns and applies the run's
policy (config key ``consistency``):

- ``rewrite`` (default): the agent's offending free text is rewritten to fit the hindsight goal:
  by one model call per candidate with the openai backend (a reply that touches anything but the
  offered free text is refused), then by the sentence filter, which drops every sentence that
  still refers to the original goal (the rules backend's whole rewrite).
- ``strip``: thoughts beside an action that refer to the original goal are dropped.
- ``flag``: nothing changes.
- ``off``: no check.

What the environment recorded (actions, tool calls and their arguments, observations, user
turns) is never edited: rewrites are stored on the candidate, keyed by step, and the original
text stays in Step and Trajectory. Whatever is left unresolved (user turns always are) flags the
candidate: it never auto-accepts and goes to review with the findings.

The rules findings: a run of SHARED_RUN consecutive words of the original goal (case and
punctuation ignored, the words as relabel.pipeline.hindsight compares them), a constraint or
entity of the original goal (a number, an id such as OBUT9V, a quoted string, a proper name) that
the hindsight goal does not name and that nothing the agent saw before had shown, a "the user
wants / asks / needs" restatement, and in a user's turn, not knowing what the new goal gives.
With the openai backend the judges also name turns that contradict the new goal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from relabel.backends import Backend, ItemContext
from relabel.config import CONSISTENCY_POLICIES
from relabel.pipeline.hindsight import MENTIONS, SHARED_RUN, word_spans
from relabel.tokens import estimate_tokens

__all__ = ["CONSISTENCY_POLICIES", "check_consistency", "find", "message_turns", "steps_turns"]

THOUGHT, FINAL, USER, OBSERVATION = "thought", "final_answer", "user", "observation"
ACTION = "action"  # a step's tool call and arguments: context, like an observation
FINAL_KEY = "final_answer"
RESTATES = re.compile(
    r"\b(?:the\s+)?(?:user|customer|client)(?:'s|’s)?\s+(?:also\s+|now\s+|just\s+)?"
    r"(?:wants?|asks?|asked|needs?|requests?|requested|would like|is asking|is looking|"
    r"is requesting|is trying|goal|task|request|question|objective)\b"
    r"|^\W*(?:goal|objective|task)\s*:"
    r"|\b(?:the|my|our)\s+(?:goal|task|objective)\s+(?:is|was|here is)\b",
    re.I | re.M,
)
DENIES = re.compile(
    r"\b(?:don't|dont|do not|can't|cannot|can not|didn't|not sure|no idea|forgot|forget)\b"
    r"[^.?!]{0,40}\b(?:remember|recall|know|have|sure|find)\b",
    re.I,
)
IDENTIFIER = re.compile(
    r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*"
)
QUOTED = re.compile(r"\"([^\"\n]{2,80})\"|“([^”\n]{2,80})”|(?<![\w])'([^'\n]{2,80})'(?![\w])")
# A digit-led word with a unit glued on (11am, 20th, 50km) is compared by its number.
UNIT = re.compile(r"^([$€£]?\d[\d.,:]*)[a-z%°]+$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
CONNECTORS = {"of", "de", "du", "van", "von", "la", "le", "the", "and", "&"}
# Capitalised, but not names of anything the task is about: a month is part of a date (its day
# counts as a number), "ID" and "EST" are words of every airline conversation.
NOT_NAMES = {"id", "ids", "ok", "am", "pm", "est", "edt", "pst", "utc", "gmt", "url", "vs", "etc"}
NOT_NAMES |= {"january", "february", "march", "april", "may", "june", "july", "august"}
NOT_NAMES |= {"september", "october", "november", "december", "monday", "tuesday", "wednesday"}
NOT_NAMES |= {"thursday", "friday", "saturday", "sunday", "i", "i'm"}
MAX_ENTITY_WORDS = 6
# Offered to a model in one call: the rewrite comes back in the reply, so the reply budget
# bounds it; turns that do not fit are left to the sentence filter.
REPLY_SHARE = 0.75
TOOL_TEXT = re.compile(
    r"^\W*(?:action|observation|user reply|tool_calls?|function_call)\s*:"
    r"|\"(?:tool_calls|function_call|arguments)\"\s*:",
    re.I | re.M,
)


@dataclass(frozen=True)
class Turn:
    """One piece of a trajectory, in order: the agent's free text (checked and rewritable), a
    user's turn (checked, never rewritten) or an observation (what the agent saw, never checked).
    ``acts``: a thought beside an action, which may be emptied; a plain message may not."""

    key: str
    step: int | None
    kind: str
    text: str
    acts: bool = False

    @property
    def rewritable(self) -> bool:
        return self.kind in (THOUGHT, FINAL)

    @property
    def label(self) -> str:
        return "final answer" if self.kind == FINAL else f"step {self.step}"


def steps_turns(steps: Iterable[Any], final_answer: str) -> list[Turn]:
    """The turns of a trajectory's steps (Step or the exports' StepRow) and its final answer."""
    turns = []
    for step in steps:
        if step.action:
            # What the agent typed explains the thought beside it ("search for CMU" while
            # typing it): what is recorded cannot change, so its words are grounded.
            arguments = json.dumps(step.action_input, ensure_ascii=False)
            turns.append(Turn(f"{ACTION}:{step.index}", step.index, ACTION, arguments))
        thought = step.thought or ""
        turns.append(Turn(str(step.index), step.index, THOUGHT, thought, bool(step.action)))
        if step.observation:
            kind = USER if step.observation_role == "user" else OBSERVATION
            turns.append(Turn(f"{kind}:{step.index}", step.index, kind, step.observation))
    turns.append(Turn(FINAL_KEY, None, FINAL, final_answer or ""))
    return turns


def message_turns(messages: Sequence[dict[str, Any]]) -> list[Turn]:
    """The turns of an exported chat (OpenAI messages): what the measurements read. Assistant
    messages are keyed by their position; the first user message is the goal itself."""
    turns, seen_user = [], False
    for i, message in enumerate(messages):
        role, text = message["role"], message.get("content") or ""
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                arguments = str(call["function"].get("arguments") or "")
                turns.append(Turn(f"{ACTION}:{i}", i, ACTION, arguments))
            turns.append(Turn(str(i), i, THOUGHT, text, bool(message.get("tool_calls"))))
        elif role == "user" and seen_user:
            turns.append(Turn(f"user:{i}", i, USER, text))
        elif role == "tool":
            turns.append(Turn(f"observation:{i}", i, OBSERVATION, text))
        seen_user = seen_user or role == "user"
    return turns


# -- what refers to the original goal --------------------------------------------------------


def entity_words(text: str) -> list[tuple[str, int, int]]:
    """``word_spans`` with a unit glued to a number taken off (11am -> 11), for entities."""
    out = []
    for word, start, end in word_spans(text):
        unit = UNIT.match(word)
        out.append((unit.group(1) if unit else word, start, end))
    return out


def _sequence_at(words: Sequence[str], seq: tuple[str, ...]) -> list[int]:
    if not seq:
        return []
    n, first = len(seq), seq[0]
    return [i for i, w in enumerate(words) if w == first and tuple(words[i : i + n]) == seq]


def _is_number(word: str) -> bool:
    digits = sum(c.isdigit() for c in word)
    return digits >= 2 or (digits >= 1 and any(c in word for c in "$€£%.,:"))


def _is_name(text: str, raw: str, start: int) -> bool:
    """A capitalised word that does not open a sentence, or an acronym (NYC, DD)."""
    if len(raw) < 2 or not raw[:1].isupper() or raw.lower() in NOT_NAMES:
        return False
    if raw.isalpha() and raw.isupper():
        return True
    return start > 0 and not re.search(r"[.!?:\n]\W*$", text[max(0, start - 4) : start])


def _names(text: str) -> list[tuple[str, ...]]:
    """Proper names: runs of capitalised words ("Carnegie Mellon University", "New York")."""
    names, current = [], []
    for word, start, end in word_spans(text):
        # A connector joins names: "University of Pittsburgh".
        if _is_name(text, text[start:end], start) or (current and word in CONNECTORS):
            current.append(word)
        else:
            names.append(_trim(current))
            current = []
    names.append(_trim(current))
    return [tuple(n) for n in names if n]


def _trim(words: list[str]) -> list[str]:
    while words and words[-1] in CONNECTORS:
        words = words[:-1]
    return words[:MAX_ENTITY_WORDS]


def original_entities(original: str) -> list[Entity]:
    """The constraints and entities of a goal, each as the words that name it."""
    found: list[Entity] = []
    found += [Entity((w,)) for w, _, _ in entity_words(original) if _is_number(w)]
    for match in IDENTIFIER.finditer(original):
        found.append(Entity(tuple(w for w, _, _ in entity_words(match.group()))))
    for match in QUOTED.finditer(original):
        quoted = next(g for g in match.groups() if g)
        found.append(Entity(tuple(w for w, _, _ in entity_words(quoted))[:MAX_ENTITY_WORDS]))
    found += [Entity(name, capitalised=True) for name in _names(original)]
    unique: dict[tuple[str, ...], Entity] = {}
    for entity in found:
        # A name that is also an id or a number ("OBUT9V") need not be capitalised to count.
        if entity.words and not (entity.capitalised and entity.words in unique):
            unique[entity.words] = entity
    return list(unique.values())


@dataclass(frozen=True)
class Entity:
    """A constraint or entity of the original goal. A proper name counts only capitalised:
    "May" (the month) is not "may". A number is a constraint wherever it appears: a page
    showing "50" somewhere does not make "within 50 km" the agent's own finding."""

    words: tuple[str, ...]
    capitalised: bool = False

    @property
    def groundable(self) -> bool:
        return not (len(self.words) == 1 and _is_number(self.words[0]))

    def places(self, text: str, words: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
        plain = [w for w, _, _ in words]
        out = []
        for i in _sequence_at(plain, self.words):
            start, end = words[i][1], words[i + len(self.words) - 1][2]
            if not self.capitalised or text[start : start + 1].isupper():
                out.append((start, end))
        return out


@dataclass
class Reference:
    """What, in a text, refers to the original goal rather than the hindsight goal."""

    runs: set[tuple[str, ...]]
    run_length: int
    entities: list[Entity]
    goal_ids: list[str]

    @classmethod
    def of(cls, original: str, goal: str) -> Reference:
        words = [w for w, _, _ in word_spans(original)]
        # Short goals are quoted whole (as relabel.pipeline.hindsight refuses them).
        n = min(SHARED_RUN, len(words))
        goal_words = [w for w, _, _ in entity_words(goal)]
        runs = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)} if n >= 3 else set()
        entities = original_entities(original)
        missing = [e for e in entities if not _sequence_at(goal_words, e.words)]
        ids = [m.group() for m in IDENTIFIER.finditer(goal)]
        return cls(runs=runs, run_length=n, entities=missing, goal_ids=ids)


@dataclass(frozen=True)
class Finding:
    key: str
    step: int | None
    turn: str
    start: int
    end: int
    reason: str
    source: str = "rules"

    def record(self, text: str) -> dict[str, Any]:
        return {
            "step": self.step,
            "turn": self.turn,
            "span": [self.start, self.end],
            "quote": text[self.start : self.end][:300],
            "reason": self.reason,
            "source": self.source,
        }


def _finding(turn: Turn, start: int, end: int, reason: str, source: str = "rules") -> Finding:
    return Finding(turn.key, turn.step, turn.kind, start, end, reason, source)


def shared_runs(turn: Turn, reference: Reference) -> list[Finding]:
    """Maximal runs of the text that repeat ``run_length`` or more words of the original."""
    spans, n = word_spans(turn.text), reference.run_length
    marked = [False] * len(spans)
    for i in range(len(spans) - n + 1):
        if tuple(w for w, _, _ in spans[i : i + n]) in reference.runs:
            marked[i : i + n] = [True] * n
    findings, i = [], 0
    while i < len(spans):
        if not marked[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(spans) and marked[j + 1]:
            j += 1
        reason = f"repeats {j - i + 1} consecutive words of the original goal"
        findings.append(_finding(turn, spans[i][1], spans[j][2], reason))
        i = j + 1
    return findings


def entity_mentions(turn: Turn, reference: Reference, grounded: set[Entity]) -> list[Finding]:
    entities = _present([e for e in reference.entities if e not in grounded], turn.text)
    if not entities:
        return []
    words = entity_words(turn.text)
    places = {place for entity in entities for place in entity.places(turn.text, words)}
    # One finding per place: "3817" inside "omar_davis_3817" is the same mention.
    outermost = [
        (s, e)
        for s, e in places
        if not any(a <= s and e <= b and (a, b) != (s, e) for a, b in places)
    ]
    return [
        _finding(
            turn,
            start,
            end,
            f"names {turn.text[start:end]!r} from the original goal, which the new goal does not "
            "ask about",
        )
        for start, end in sorted(outermost)
    ]


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, a line at most: what the sentence filter keeps or drops."""
    out = []
    for line in re.finditer(r"[^\n]+", text):
        start = line.start()
        for piece in SENTENCE_END.split(line.group()):
            offset = text.index(piece, start) if piece else start
            if piece.strip():
                out.append((offset, offset + len(piece)))
            start = offset + len(piece)
    return out


def restatements(turn: Turn) -> list[Finding]:
    findings = []
    for start, end in sentences(turn.text):
        sentence = turn.text[start:end]
        if RESTATES.search(sentence) or MENTIONS.search(sentence):
            reason = 'restates the task it was given ("the user wants ...")'
            findings.append(_finding(turn, start, end, reason))
    return findings


def denials(turn: Turn, reference: Reference, user_said: str) -> list[Finding]:
    """The user does not know or have something, while the goal gives an id the user never
    says ("I don't remember the reservation ID" under a goal naming OBUT9V)."""
    match = DENIES.search(turn.text)
    unsaid = [i for i in reference.goal_ids if i.lower() not in user_said]
    if not match or not unsaid:
        return []
    given = ", ".join(unsaid[:3])
    reason = f"the user says they do not know or have what the new goal gives ({given})"
    return [_finding(turn, match.start(), match.end(), reason)]


def _present(entities: Sequence[Entity], text: str) -> list[Entity]:
    """The entities whose every word occurs somewhere in ``text``: only those can be in it,
    so a 40 KB page is split into words only when one might be there (that split was most of
    a run's CPU). Checked for ASCII words only, whose case maps one character to one."""
    lowered = text.lower()
    return [e for e in entities if all(w in lowered for w in e.words if w.isascii())]


def _grounds(text: str, reference: Reference) -> set[Entity]:
    entities = _present([e for e in reference.entities if e.groundable], text)
    if not entities:
        return set()
    words = entity_words(text)
    return {e for e in entities if e.places(text, words)}


def find(reference: Reference, turns: Sequence[Turn]) -> list[Finding]:
    """Every place in the agent's free text and the user's turns that refers to the original
    goal. An entity the environment or the user showed earlier is grounded, not a restatement:
    "Apple Store" after the search result that lists it; for a user's turn, after the agent
    said it too."""
    findings: list[Finding] = []
    seen: set[Entity] = set()  # entities that what the agent saw has shown
    said: set[Entity] = set()  # ... and that the agent itself said
    user_said = " ".join(t.text for t in turns if t.kind == USER).lower()
    for turn in turns:
        if turn.kind in (OBSERVATION, ACTION):
            seen |= _grounds(turn.text, reference)
            continue
        if not turn.text.strip():
            continue
        grounded = seen | said if turn.kind == USER else seen
        found = shared_runs(turn, reference) + entity_mentions(turn, reference, grounded)
        if turn.kind == USER:
            found += denials(turn, reference, user_said)
            seen |= _grounds(turn.text, reference)
        else:
            found += restatements(turn)
            said |= _grounds(turn.text, reference)
        findings += found
    return findings


def judge_findings(verdicts: Sequence[dict[str, Any]], turns: Sequence[Turn]) -> list[Finding]:
    """The judges' "this turn contradicts the new goal", placed at the quote they cite (the
    whole turn when the quote is not found; the step itself when it has no free text)."""
    findings = []
    for verdict in verdicts:
        for item in verdict.get("contradictions") or []:
            finding = _place(item, turns, f"judge:{verdict['name']}")
            if finding is not None:
                findings.append(finding)
    return findings


def _place(item: dict[str, Any], turns: Sequence[Turn], source: str) -> Finding | None:
    step, quote = item.get("step"), str(item.get("quote") or "").strip()
    reason = f"contradicts the new goal: {str(item.get('reason') or '').strip()}"[:500]
    candidates = [t for t in turns if t.step == step and t.kind in (THOUGHT, USER) and t.text]
    for turn in candidates:
        at = turn.text.find(quote) if quote else -1
        if at >= 0:
            return _finding(turn, at, at + len(quote), reason, source)
    if candidates:
        turn = candidates[0]
        return _finding(turn, 0, len(turn.text), reason, source)
    if isinstance(step, int):
        return Finding(f"step:{step}", step, "step", 0, 0, reason, source)
    return None


# -- the policies ----------------------------------------------------------------------------


def filter_sentences(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` without the sentences that overlap ``spans``; lines left empty go too."""
    all_sentences = sentences(text)
    dropped = {(s, e) for s, e in all_sentences if any(a < e and s < b for a, b in spans)}
    if not dropped:
        return text
    lines = []
    for line in re.finditer(r"[^\n]*\n?", text):
        if not line.group():
            continue
        inside = [(s, e) for s, e in all_sentences if line.start() <= s < line.end()]
        kept = [text[s:e] for s, e in inside if (s, e) not in dropped]
        if len(kept) == len(inside):
            lines.append(line.group())
        elif kept:
            lines.append(" ".join(kept) + ("\n" if line.group().endswith("\n") else ""))
    return re.sub(r"\n{3,}", "\n\n", "".join(lines)).strip()


def _meaningful(text: str) -> bool:
    return len(word_spans(text)) >= 3


def sentence_filter(
    turns: Sequence[Turn], findings: Sequence[Finding], rewrites: dict[str, str]
) -> dict[str, str]:
    """Drops every sentence with a finding from the agent's free text. A plain message or a
    final answer is kept whole when nothing meaningful would be left of it (it stays
    unresolved, so the candidate is flagged): an empty reply teaches nothing."""
    out = dict(rewrites)
    by_key: dict[str, list[tuple[int, int]]] = {}
    for f in findings:
        by_key.setdefault(f.key, []).append((f.start, f.end))
    for turn in turns:
        if not turn.rewritable or turn.key not in by_key:
            continue
        text = out.get(turn.key, turn.text)
        filtered = filter_sentences(text, by_key[turn.key])
        if filtered == text or (not turn.acts and not _meaningful(filtered)):
            continue
        out[turn.key] = filtered
    return out


def strip_thoughts(turns: Sequence[Turn], findings: Sequence[Finding]) -> dict[str, str]:
    """``strip``: a thought beside an action that refers to the original goal is dropped."""
    flagged = {f.key for f in findings}
    return {t.key: "" for t in turns if t.kind == THOUGHT and t.acts and t.key in flagged}


def overlaid(turns: Sequence[Turn], rewrites: dict[str, str]) -> list[Turn]:
    return [
        Turn(t.key, t.step, t.kind, rewrites[t.key], t.acts) if t.key in rewrites else t
        for t in turns
    ]


def unresolved(
    reference: Reference,
    turns: Sequence[Turn],
    rewrites: dict[str, str],
    judged: Sequence[Finding],
) -> tuple[list[Turn], list[Finding]]:
    """The turns as exported and what still refers to the original goal in them: the rules
    check again, and the judges' findings on turns that were not rewritten."""
    exported = overlaid(turns, rewrites)
    left = find(reference, exported)
    left += [f for f in judged if f.key not in rewrites]
    return exported, left


# -- the model's rewrite ---------------------------------------------------------------------


def offered_turns(
    turns: Sequence[Turn], findings: Sequence[Finding], budget: int
) -> list[dict[str, Any]]:
    """The free-text turns with findings that fit ``budget`` tokens, whole (a rewrite replaces
    the whole text, so a cut text cannot be offered): label, text and what is wrong."""
    problems: dict[str, list[str]] = {}
    for f in findings:
        problems.setdefault(f.key, []).append(f.reason)
    offered, used = [], 0
    for turn in turns:
        if not turn.rewritable or turn.key not in problems or not turn.text.strip():
            continue
        cost = estimate_tokens(turn.text)
        if used + cost > budget:
            continue
        used += cost
        reasons = list(dict.fromkeys(problems[turn.key]))[:4]
        offered.append(
            {"key": turn.key, "label": turn.label, "text": turn.text, "problems": reasons}
        )
    return offered


def refusal(reply: dict[str, Any], offered: Sequence[dict[str, Any]]) -> str:
    """Why a model's rewrite cannot be used ("" when it can): it may only replace the offered
    free text, never name a tool call, an observation or a user's turn, nor carry one."""
    labels = {o["label"] for o in offered}
    for entry in reply.get("turns") or []:
        label = str(entry.get("turn", "")).strip().lower()
        if label not in labels:
            return (
                f"it rewrites {entry.get('turn')!r}, which is not free text of the agent that was "
                "offered: tool calls, their arguments, observations and user turns are never edited"
            )
        if TOOL_TEXT.search(str(entry.get("text", ""))):
            return f"its text for {label} carries a tool call or an observation"
    return ""


def model_rewrites(
    backend: Backend, ctx: ItemContext, goal: str, turns: Sequence[Turn], findings: list[Finding]
) -> tuple[dict[str, str], str]:
    """One call to the backend for every offending free-text turn that fits its budget:
    (rewrites by key, why they were refused or "")."""
    config = ctx.config
    budget = min(
        int(config["max_prompt_tokens"]) // 2,
        int(int(config["max_completion_tokens"]) * REPLY_SHARE),
    )
    offered = offered_turns(turns, findings, budget)
    if not offered:
        return {}, ""
    reply = backend.rewrite(ctx, goal, offered)
    why = refusal(reply, offered)
    if why:
        return {}, why
    keys = {o["label"]: o for o in offered}
    rewrites = {}
    for entry in reply.get("turns") or []:
        target, text = keys[str(entry["turn"]).strip().lower()], str(entry.get("text", "")).strip()
        turn = next(t for t in turns if t.key == target["key"])
        if text or turn.acts:  # an emptied plain message or answer is no rewrite
            rewrites[turn.key] = text
    return rewrites, ""


@dataclass
class Consistency:
    """The stage's result: what goes on the Candidate (``consistency``, ``rewrites``)."""

    policy: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    rewrites: dict[str, str] = field(default_factory=dict)
    method: str = ""  # who rewrote: the backend's name ("rules": the sentence filter alone)
    refused: str = ""

    @property
    def flagged(self) -> bool:
        return bool(self.unresolved)

    def fields(self) -> dict[str, Any]:
        record = {
            "policy": self.policy,
            "method": self.method,
            "findings": self.findings,
            "unresolved": self.unresolved,
            "flagged": self.flagged,
        }
        if self.refused:
            record["refused"] = self.refused
        return {"consistency": record, "rewrites": self.rewrites}


def records(findings: Iterable[Finding], turns: Sequence[Turn]) -> list[dict[str, Any]]:
    texts = {t.key: t.text for t in turns}
    return [f.record(texts.get(f.key, "")) for f in findings]


def check_consistency(
    backend: Backend,
    ctx: ItemContext,
    goal: str,
    verdicts: Sequence[dict[str, Any]],
    *,
    worth_a_call: bool = True,
) -> Consistency:
    """The check and the run's policy on one candidate whose hindsight goal is ``goal``.
    ``worth_a_call``: False for a candidate the gate rejects anyway (no model rewrite is paid
    for it; the sentence filter still runs)."""
    # A run frozen before the check existed was configured without it: resumed, it stays so.
    policy = ctx.config.get("consistency", "off")
    if policy == "off":
        return Consistency(policy)
    reference = Reference.of(ctx.trajectory.goal, goal)
    turns = steps_turns(ctx.steps, ctx.trajectory.final_answer)
    judged = judge_findings(verdicts, turns)
    findings = find(reference, turns) + judged
    result = Consistency(policy, findings=records(findings, turns))
    if policy == "rewrite" and findings:
        result.method = backend.name if worth_a_call else "sentence filter"
        if worth_a_call:
            result.rewrites, result.refused = model_rewrites(backend, ctx, goal, turns, findings)
        _, left = unresolved(reference, turns, result.rewrites, judged)
        result.rewrites = sentence_filter(turns, left, result.rewrites)
    elif policy == "strip":
        result.rewrites = strip_thoughts(turns, findings)
    exported, left = unresolved(reference, turns, result.rewrites, judged)
    result.unresolved = records(left, exported)
    return result
