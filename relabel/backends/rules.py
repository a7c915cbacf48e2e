"""The rules backend: every stage offline, deterministic, from the trajectory alone.

It is the demo's backend and a baseline to compare models against. What it does:

- detect: a trajectory whose outcome is unknown (no benchmark signal) is left undecided, with
  the reason (the run skips it); for a failure, error observations, give-up answers, a missing
  final answer and a partial reward map to a failure type; severity grows with the share of
  failed steps and when nothing was answered.
- extract: each step whose action returned something other than an error becomes an achievement
  grounded to that step; the final answer is an achievement grounded to the last step.
- relabel: goals are tasks a person would give, built from what the run did, and never contain
  the answer they ask for (a training instruction that holds its own answer teaches copying).
  Attempt 1 asks for the kind of answer the run gave (a booking, an amount, coordinates, a list;
  or what the answer is about: "the total revenue for Q3 2025") with the tools and first input
  or the site and search the run used; attempt 2 the last successful tool call or page reached;
  attempt 3 the sequence of calls or pages. A wording that would give the answer away loses its
  arguments or is dropped. Confidence follows how much of the answer the observations show (or
  the template's), and falls with the share of failed steps and the severity.
- the panel: "rules-grounding" (vetoes goals whose content the steps do not show) and
  "rules-specificity" (vetoes goals too vague or too long to be an instruction, or that paste
  raw markup or JSON instead of asking for something).
"""

from __future__ import annotations

import json
import re
from typing import Any

from relabel.backends.base import ItemContext
from relabel.models import Step

ERROR = re.compile(
    r"\b(error|exception|traceback|failed|failure|not found|invalid|timed? ?out|denied|"
    r"unavailable|forbidden|errno)\b",
    re.I,
)
GIVE_UP = re.compile(r"give[ _]?up|gave up|unable to|cannot|can't|could not|not possible", re.I)
MARKUP = re.compile(
    r"RootWebArea|\[\d+\] (link|button|textbox|heading)|<(html|div|span)\b|\{\"\w+\": "
)
TAGS = re.compile(r"</?\w+[^>]*>")
SPACE = re.compile(r"\s+")
UNDECIDED = (
    "the rules backend cannot tell whether a run without a recorded outcome succeeded: "
    "relabel it with an openai run, whose detection stage decides"
)
PANEL = [
    {"name": "rules-grounding", "model": "rules", "endpoint": "offline"},
    {"name": "rules-specificity", "model": "rules", "endpoint": "offline"},
]


def clean(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, markup and runs of space removed."""
    text = SPACE.sub(" ", TAGS.sub(" ", text or "")).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def first_sentence(text: str, limit: int = 140) -> str:
    text = clean(text, 2000)
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return clean(match.group(1) if match else text, limit)


def is_error(step: Step) -> bool:
    return bool(ERROR.search(step.observation[:2000]))


def action_phrase(step: Step) -> str:
    """``search "copper wire supplier"``: the action and its first short argument."""
    arguments = step.action_input
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return (
                clean(arguments, 60)
                if step.action in arguments
                else clean(f"{step.action} {arguments}", 60)
            )
    values = arguments.values() if isinstance(arguments, dict) else [arguments]
    shown = [v for v in values if isinstance(v, str | int | float) and str(v).strip()]
    if shown:
        return clean(f'{step.action} "{shown[0]}"', 60)
    return step.action


def error_share(steps: list[Step]) -> float:
    acted = [s for s in steps if s.action]
    return sum(is_error(s) for s in acted) / len(acted) if acted else 0.0


CONTENT = re.compile(r"[a-z]{4,}|\d+(?:[.,]\d+)*", re.I)
TEMPLATE_WORDS = {
    "using",
    "find",
    "report",
    "following",
    "carry",
    "these",
    "actions",
    "order",
    "then",
    "what",
    "returns",
    "with",
}


def content_words(text: str) -> set[str]:
    return {w.lower() for w in CONTENT.findall(text)} - TEMPLATE_WORDS


def evidence(steps: list[Step]) -> set[str]:
    """Words the environment showed or the agent typed: observations and action arguments."""
    words: set[str] = set()
    for step in steps:
        words |= content_words(step.observation[:4000])
        words |= content_words(json.dumps(step.action_input)[:1000])
    return words


def support(text: str, steps: list[Step], neutral: set[str] = frozenset()) -> float:
    """The share of ``text``'s content words that the steps show (1.0 when it has none); words
    in ``neutral`` (a template's own words) are left out."""
    words = content_words(text) - {s.action.lower() for s in steps} - neutral
    return len(words & evidence(steps)) / len(words) if words else 1.0


def tool_words(steps: list[Step]) -> set[str]:
    """The words of the tools' names: "search_hotels" -> {"search", "hotels"}."""
    return {w.lower() for s in steps for w in re.split(r"[\W_]+", s.action) if w}


PAGE_TITLE = re.compile(r"RootWebArea '([^'\n]{0,200})'")
PAGE_URL = re.compile(r"^URL: (\S+)", re.M)
# Bidirectional marks, as characters or as the literal escapes some exports keep.
INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2066-\u2069]|\\u20(0[b-f]|2[a-e]|6[6-9])")
# Also AutoGen's "TERMINATE", which ends a conversation and answers nothing.
ACKNOWLEDGEMENT = re.compile(
    r"\b(ok|okay|done|submitted|completed|finished|successful|success|terminate)\b", re.I
)
# Actions that talk to the user rather than act on the environment.
MESSAGE_ACTIONS = {"send_msg_to_user", "finish", "Finish", "final_answer", "answer", "respond"}


def page_of(observation: str) -> tuple[str, str] | None:
    """(title, site) of a web page observation (BrowserGym's "URL: ..." and accessibility tree)."""
    url = PAGE_URL.search(observation[:2000])
    if not url or not url.group(1).startswith("http"):
        return None
    title = PAGE_TITLE.search(observation[:4000])
    site = url.group(1).split("/")[2]
    return clean(INVISIBLE.sub("", title.group(1)) if title else "", 100), site


def last_page(steps: list[Step]) -> tuple[str, str] | None:
    for step in reversed(steps):
        page = page_of(step.observation)
        if page:
            return page
    return None


# A multi-agent framework's end-of-conversation word (AutoGen's "TERMINATE"): not an answer.
TERMINATION = re.compile(r"^\W*(terminate|exit)\W*$", re.I)


def final_answer(ctx: ItemContext) -> str:
    """The run's answer; where a multi-agent log ends on a termination word, what an agent last
    said (the answer the group settled on before stopping)."""
    answer = ctx.trajectory.final_answer.strip()
    if TERMINATION.match(answer):
        said = (s.thought.strip() for s in reversed(ctx.steps) if not s.action)
        answer = next((text for text in said if text and not TERMINATION.match(text)), "")
    return "" if GIVE_UP.search(answer[:300]) else answer


# -- wording goals ---------------------------------------------------------------------------
# A goal says what to do and what kind of thing to report, never the reported thing itself: a
# training instruction that contains its answer teaches copying, not doing.

# Words the goal templates add: the grounding judge does not ask the steps to show them.
GOAL_WORDS = {
    "address", "amount", "booking", "browse", "call", "confirmation", "conversation",
    "coordinates", "date", "details", "figure", "found", "from", "long", "open", "outcome",
    "page", "price", "report", "result", "results", "search", "summarise", "takes", "then",
    "website", "with", "work", "shows", "returns", "whether", "finds", "what", "list", "single",
    "make", "type", "press", "find", "directions", "travel", "time", "route", "full", "please",
    "tell",
}  # fmt: skip
# Steps that only think or talk, and browser actions, are not tools a goal should name.
INTERNAL = {"think", "reason", "plan"}
BROWSER = {"click", "fill", "type", "press", "goto", "scroll", "hover", "select_option", "noop"}
BROWSER |= {"go_back", "go_forward", "new_tab", "tab_focus", "tab_close", "focus", "clear"}
READS = {"get", "find", "search", "fetch", "lookup", "look", "list", "read", "query", "retrieve"}
READS |= {"check", "calculate", "compute", "run", "show", "view", "load", "count", "scholar"}
COPULA = re.compile(
    r"^(?P<article>(?:the|your|my)\s+)?(?P<subject>[A-Za-z][\w\s'/-]{2,60}?)\s+"
    r"(?P<verb>is|was|are|were|costs|cost|totals|totalled|comes to|came to)\s+(?P<value>\S.*)$",
    re.I,
)
SHOWS = {"read", "load", "view", "show", "fetch"}
# First words of tool names that change something rather than look something up.
ACTS = {"book", "cancel", "update", "transfer", "send", "create", "delete", "exchange", "modify"}
ACTS |= {"add", "remove", "draft", "write", "post", "submit", "set", "rename", "return", "pay"}
ACTS |= {"refund", "move", "upload", "save", "buy", "reserve", "schedule", "edit", "reply"}
NOT_SUBJECTS = {"i", "it", "this", "that", "there", "he", "she", "they", "we", "you", "here"}
NOT_SUBJECTS |= {"right", "now", "today", "which", "what", "answer", "result", "everything"}
# "Pittsburgh International Airport, Coraopolis Heights Road, ..., 15231, United States": a
# place's name, then at least two more parts of an address, one of them a postcode.
ADDRESS = re.compile(r"^(?P<name>[^,\n]{3,60}),(?:[^,\n]+,){2,}[^\n]*\b\d{4,6}\b")
KINDS = [
    ("a booking", "report the booking confirmation",
     re.compile(r"\b(booked|reserved|booking|reservation|confirmation)\b", re.I)),
    ("a web address", "report the website address", re.compile(r"^\S*(https?://|www\.)\S+$")),
    ("coordinates", "report the coordinates",
     re.compile(r"-?\d{1,3}\.\d{3,},\s*-?\d{1,3}\.\d{3,}")),
    # A duration is only worth asking for as the travel time of directions the run got (see
    # RulesBackend._asked): "report how long it takes" alone says of what nothing.
    ("a duration", "",
     re.compile(r"\b\d{1,2}:\d\d\b(?!:)|\b\d+\s*(minutes?|mins?|hours?|hrs?)\b", re.I)),
    ("an address", "", ADDRESS),
    ("a list", "list what you found", re.compile(r"(^|\s)1[.)]\s.*(^|\s)2[.)]\s", re.S)),
    ("an amount", "report the amount",
     re.compile(r"[$€£¥]\s?\d|\d\s?(EUR|USD|GBP|JPY|dollars|euros)\b", re.I)),
    ("a date", "report the date",
     re.compile(r"\b\d{4}-\d\d-\d\d\b|\b\d{1,2} (jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
                re.I)),
]  # fmt: skip
WORDS = re.compile(r"[a-z0-9]+(?:[.,:/@-][a-z0-9]+)*", re.I)


def words_of(text: str) -> list[str]:
    return [w.lower() for w in WORDS.findall(text)]


def answer_kind(answer: str) -> str:
    for kind, _, pattern in KINDS:
        if pattern.search(answer[:1000]):
            return kind
    return "a short result" if len(answer.split()) <= 6 else "a statement"


def report_phrase(answer: str) -> str:
    """What to ask for, from the kind of answer: "report the amount", "list what you found";
    "" for a kind that means nothing without its subject (a duration, an address)."""
    for _, phrase, pattern in KINDS:
        if pattern.search(answer[:1000]):
            return phrase
    return "report the result" if len(answer.split()) <= 6 else "summarise what you found"


def answer_subject(answer: str) -> tuple[str, str]:
    """("the total revenue for Q3 2025", "18,430 EUR.") from "Total revenue for Q3 2025 was
    18,430 EUR.": what the answer is about and the value it gives; ("", answer) when unclear."""
    if "\n" in answer.strip():
        return "", answer
    match = COPULA.match(first_sentence(answer, 300))
    if not match:
        return "", answer
    subject = match.group("subject").strip()
    words = subject.split()
    if words[0].lower() in NOT_SUBJECTS or len(words) > 8 or words[-1].lower() in NOT_SUBJECTS:
        return "", answer
    # "Total revenue ..." is capitalised as the sentence's start, "The Alpine tent" as a name.
    if not match.group("article") and not subject[1:2].isupper():
        subject = subject[0].lower() + subject[1:]
    if match.group("verb").lower().startswith("cost"):
        return f"the price of the {subject}", match.group("value")
    return f"the {subject}", match.group("value")


def leaks(goal: str, answer: str, value: str, site: str = "") -> bool:
    """Whether ``goal`` gives away ``answer``: the answer whole, four words in a row of the value
    it states, a number or identifier from that value, or, for a short answer, any of its words.
    The web ``site`` the run worked on is where it worked, not what it found: naming it is fine."""
    said, goal_words = words_of(value or answer), words_of(goal)
    answer_words = words_of(answer)
    if not answer_words:
        return False
    text = f" {' '.join(goal_words)} "
    if f" {' '.join(answer_words)} " in text:
        return True
    runs = {tuple(said[i : i + 4]) for i in range(len(said) - 3)}
    if runs & {tuple(goal_words[i : i + 4]) for i in range(len(goal_words) - 3)}:
        return True
    values = {w for w in said if any(c.isdigit() for c in w) and len(w) >= 2}
    values |= {w for w in said if "@" in w or "/" in w}
    if len(answer_words) <= 4:
        values |= {w for w in said if len(w) >= 4} - GOAL_WORDS
    return bool((values - set(words_of(site))) & set(goal_words))


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def argument_of(step: Step) -> str:
    """The step's first short, human-readable argument: a city, a file, a query, an email."""
    arguments = step.action_input
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {"": arguments}
    if not isinstance(arguments, dict):
        arguments = {"": arguments}
    for value in arguments.values():
        text = clean(str(value), 200) if isinstance(value, str | int | float) else ""
        limit = 40 if " " in text else 60
        if 2 <= len(text) <= limit and not text.isdigit() and step.action not in text:
            return text
    return ""


def quoted(argument: str) -> str:
    if " " not in argument:
        return argument
    return f'"{argument}"' if "'" in argument else f"'{argument}'"


def with_argument(argument: str) -> str:
    """The argument as a phrase (" on sales.csv", " for Lisbon"); "" without one."""
    if not argument:
        return ""
    where = "on" if re.search(r"\.\w{2,4}$|/", argument) else "for"
    return f" {where} {quoted(argument)}"


def acted_steps(steps: list[Step]) -> list[Step]:
    return [
        s
        for s in steps
        if s.action and s.action not in MESSAGE_ACTIONS | INTERNAL and not is_error(s)
    ]


def tool_names(steps: list[Step]) -> list[str]:
    acted = acted_steps(steps) or [s for s in steps if s.action]
    names = [s.action for s in acted if s.action not in MESSAGE_ACTIONS | INTERNAL | BROWSER]
    return list(dict.fromkeys(names))[:4]


def key_argument(steps: list[Step]) -> str:
    """The input the run started from: the first successful tool call's first short argument."""
    for step in acted_steps(steps):
        if step.action not in BROWSER:
            return argument_of(step)
    return ""


def typed_text(steps: list[Step]) -> str:
    """What a web run typed (a search, a form value), from its first successful fill."""
    for step in acted_steps(steps):
        if step.action in {"fill", "type"}:
            arguments = step.action_input if isinstance(step.action_input, dict) else {}
            value = clean(str(arguments.get("value") or arguments.get("text") or ""), 200)
            if 2 <= len(value) <= 60:
                return value
    return ""


def tool_task(action: str, argument: str, seen: str) -> tuple[str, float]:
    """One tool call as a task ("Use find_user_id_by_email for noor@example.com and report the
    user id"), asking for the kind of thing the tool gives, not for what it gave; with the
    template's confidence (lower for "report what it returns", which names nothing)."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", action)]
    rest = " ".join(words[1:]).split(" by ")[0].strip()
    if words and words[0] in READS:
        if words[0] in {"calculate", "compute"}:
            what = "the result"
        elif words[0] in SHOWS or rest in {"page", "file", "url", "document"}:
            what = "what it shows"
        elif words[0] in {"search", "list", "query", "run", "scholar"} or not rest:
            what = "the results" if seen.strip() not in {"[]", "{}"} else "whether it finds any"
        else:
            what = f"the {rest}"
        return f"Use {action}{with_argument(argument)} and report {what}", 0.6
    if words and words[0] in ACTS:
        verb = " ".join(words)
        goal = sentence(f"{verb}{with_argument(argument)} with {action} and report the outcome")
        return goal, 0.6
    return f"Use {action}{with_argument(argument)} and report what it returns", 0.45


def step_phrase(step: Step, with_arg: bool = True) -> str:
    argument = argument_of(step) if with_arg else ""
    return step.action + (f" {with_argument(argument)[1:]}" if argument else "")


def page_titles(steps: list[Step]) -> list[str]:
    titles = [page_of(s.observation) for s in steps]
    return list(dict.fromkeys(t[0] for t in titles if t and t[0]))


def browser_plan(acted: list[Step]) -> str:
    """Browser actions with no page reached: the addresses visited and the text typed."""
    phrases = []
    for step in acted:
        arguments = step.action_input if isinstance(step.action_input, dict) else {}
        url = str(arguments.get("url") or "")
        if step.action == "goto" and url.startswith("http") and len(url) <= 80:
            phrases.append(f"go to {url}")
        elif step.action in {"fill", "type"} and typed_text([step]):
            phrases.append(f"type '{typed_text([step])}'")
    return sentence(", then ".join(dict.fromkeys(phrases)))


def web_plan(acted: list[Step], page: tuple[str, str]) -> str:
    """A web run as a task: the search it typed and the pages it passed through (never what
    they showed), e.g. "On shop.local:7770, search for 'shoe' and go on to the 'Results' page"."""
    site, typed, titles = page[1], typed_text(acted), page_titles(acted)
    if typed and titles:
        return f"On {site}, search for '{typed}' and go on to the '{titles[-1]}' page"
    if typed:
        return f"On {site}, search for '{typed}'"
    if len(titles) >= 2:
        return f"On {site}, go from the '{titles[0]}' page to the '{titles[-1]}' page"
    if titles:
        return f"Go to {site} and find the '{titles[0]}' page"
    return f"Go to {site} and " + ", then ".join(dict.fromkeys(s.action for s in acted))


def field_label(ctx: ItemContext, position: int) -> str:
    """The label of the field a fill typed into ("From"), read from the page it was typed on
    (the previous step's observation, or the first page)."""
    step = ctx.steps[position]
    arguments = step.action_input if isinstance(step.action_input, dict) else {}
    if position:
        page = ctx.steps[position - 1].observation
    else:
        page = str((ctx.trajectory.metadata or {}).get("initial_observation") or "")
    bid = re.escape(str(arguments.get("bid", "")))
    match = re.search(rf"\[{bid}\] (?:textbox|combobox|searchbox) '([^'\n]*)'", page[:12000])
    return match.group(1).strip().lower() if match else ""


def directions(ctx: ItemContext) -> tuple[str, str] | None:
    """(from, to) when the run typed both ends of a route into From and To fields."""
    ends: dict[str, str] = {}
    for position, step in enumerate(ctx.steps):
        if step.action in {"fill", "type"} and not is_error(step):
            label, value = field_label(ctx, position), typed_text([step])
            if label in ("from", "to") and value:
                ends[label] = value
    return (ends["from"], ends["to"]) if len(ends) == 2 else None


def asked_for(ctx: ItemContext, answer: str, subject: str) -> str:
    """What to ask for: the answer's subject, the address of the place it names, the travel
    time or the route of directions the run got, else the kind of answer it gave. "" when the
    kind says nothing without its subject ("report how long it takes": of what?)."""
    if subject:
        return f"report {subject}"
    address = ADDRESS.match(answer.strip())
    if address:
        return f"report the full address of {clean(address.group('name'), 60)}"
    route = directions(ctx)
    phrase = report_phrase(answer)
    if route and answer_kind(answer) == "a duration":
        return "report the travel time"
    if route and phrase in ("report the result", "summarise what you found"):
        return "summarise the route"
    return phrase


ROUTE_ASKS = ("report the travel time", "summarise the route")


def route_finding(answer: str) -> str:
    """What a route's answer found (its durations and distances), not the ends it names."""
    duration = KINDS[3][2]
    return " ".join(m.group() for m in duration.finditer(answer)) or ""


def is_conversation(steps: list[Step]) -> bool:
    return any(s.observation_role == "user" and s.observation for s in steps)


ID_LIKE = re.compile(r"(?=\S*\d)(?=\S*[a-z])\S{5,}", re.I)


def conversation_task(steps: list[Step]) -> tuple[str, str, float] | None:
    """The last change the run made in a conversation, asked in the user's words ("I'm
    mia_li_3668. Please book my reservation and tell me the outcome."). Only what the user said
    is named: an id the agent looked up would contradict a later "I don't remember the
    reservation ID"."""
    said = " ".join(s.observation for s in steps if s.observation_role == "user").lower()
    # A hand-off ("transfer_to_human_agents") is not a change the user asked for.
    acting = [
        s
        for s in acted_steps(steps)
        if tool_verb(s.action)[0] in ACTS and not tool_verb(s.action)[1].startswith("to ")
    ]
    if not acting:
        return None
    step = acting[-1]
    values = [str(v) for s in steps for v in arguments_of(s).values() if isinstance(v, str)]
    who = next((v for v in values if ID_LIKE.fullmatch(v) and v.lower() in said), "")
    verb, rest = tool_verb(step.action)
    request = f"{verb} my {rest}" if rest else verb
    opener = f"I'm {who}. " if who else ""
    goal = f"{opener}Please {request} and tell me the outcome."
    return goal, f"Step {step.index} made this change in the conversation.", 0.6


def tool_verb(action: str) -> tuple[str, str]:
    """("update", "reservation flights") from update_reservation_flights."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", action)]
    return (words[0], " ".join(words[1:])) if words else ("", "")


def arguments_of(step: Step) -> dict[str, Any]:
    arguments = step.action_input
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return {}
    return arguments if isinstance(arguments, dict) else {}


# The kind of answer a goal asks for, and what an answer of that kind looks like.
ASKS = [(phrase.removeprefix("report the "), pattern) for _, phrase, pattern in KINDS if phrase]
ASKS += [("travel time", KINDS[3][2]), ("full address", ADDRESS)]
VAGUE_ASK = re.compile(
    r"\b(?:report the result|summarise what you found|report what it returns)\W*$"
)
NAMED_OBJECT = re.compile(r"\bsearch for\b|\bget directions\b|\bUse \w|\bCall \w|\w+_\w+")


def unstated_answer(ctx: ItemContext, goal: str) -> str:
    """Why the run does not state the answer ``goal`` asks for; "" when it does. A change must
    have gone through, a named tool have answered, and a report be in the final answer, of
    the kind asked for."""
    low = goal.lower()
    acted = acted_steps(ctx.steps)
    if "the outcome" in low:
        changed = [s for s in acted if tool_verb(s.action)[0] in ACTS]
        return "" if changed else "the goal asks for a change that never went through"
    named = [s for s in acted if s.action and s.action.lower() in low]
    if named or not re.search(r"\b(report|list|summarise|tell)\b", low):
        return ""
    answer = final_answer(ctx)
    if not answer:
        return "the goal asks for an answer the run never gave"
    for asked, pattern in ASKS:
        if f"the {asked}" in low and not pattern.search(answer.strip()[:1000]):
            return f"the goal asks for the {asked}, which the run's answer does not state"
    return ""


class RulesBackend:
    name = "rules"

    def __init__(self, config: dict[str, Any]):
        self.config = config

    # -- stage 1 -------------------------------------------------------------------------------

    def detect(self, ctx: ItemContext) -> dict[str, Any]:
        t, steps = ctx.trajectory, ctx.steps
        if t.success is None:
            # Rules cannot tell a success from a failure without a signal; guessing either way
            # would put a false label on training data.
            return {"undecided": UNDECIDED}
        errors = error_share(steps)
        text = " ".join([t.failure_reason, t.raw_label, t.final_answer[:300]])
        if not steps:
            kind, severity, why = "incomplete", 0.95, "the agent took no step"
        elif steps and is_error(steps[-1]) and errors >= 0.5:
            kind, severity, why = "tool_error", 0.5 + 0.4 * errors, "most actions returned errors"
        elif GIVE_UP.search(text):
            kind, severity, why = "incomplete", 0.55, "the agent gave up"
        elif t.reward is not None and 0 < t.reward < 1:
            kind, severity, why = "constraint_violation", 0.6 * (1 - t.reward), "partial reward"
        elif not t.final_answer.strip():
            kind, severity, why = "incomplete", 0.45, "no final answer"
        elif support(t.final_answer, steps) < 0.35:
            kind, severity, why = "hallucination", 0.75, "the answer is not shown by any step"
        elif errors > 0:
            kind, severity, why = "tool_error", 0.3 + 0.4 * errors, "some actions returned errors"
        else:
            kind, severity, why = "wrong_result", 0.35, "the answer was judged wrong"
        if 0 < len(steps) < 2:
            severity += 0.1
        severity = round(min(1.0, severity), 2)
        return {
            "failure_type": kind,
            "severity": severity,
            "recoverable": severity < 0.7,
            "explanation": f"{why} ({len(steps)} steps, {errors:.0%} with errors)",
        }

    # -- stage 2 -------------------------------------------------------------------------------

    def extract(self, ctx: ItemContext) -> dict[str, Any]:
        steps = ctx.steps
        achievements = []
        for step in steps[-8:]:
            if not step.action or is_error(step):
                continue
            seen = first_sentence(step.observation, 120)
            text = f"Ran {action_phrase(step)}" + (f" and got: {seen}" if seen else "")
            achievements.append({"text": text, "steps": [step.index]})
        answer = final_answer(ctx)
        if answer and steps:
            achievements.append(
                {"text": f"Answered: {clean(answer, 200)}", "steps": [steps[-1].index]}
            )
        observations = [
            first_sentence(s.observation) for s in steps[-3:] if s.observation and not is_error(s)
        ]
        limitations = [
            f"Step {s.index} failed: {first_sentence(s.observation, 100)}"
            for s in steps
            if s.action and is_error(s)
        ][:5]
        if not ctx.trajectory.final_answer.strip():
            limitations.append("The agent gave no final answer.")
        if ctx.trajectory.failure_reason:
            limitations.append(clean(ctx.trajectory.failure_reason, 200))
        return {
            "achievements": achievements,
            "key_observations": observations,
            "limitations": limitations,
        }

    # -- stage 3 -------------------------------------------------------------------------------

    def relabel(
        self,
        ctx: ItemContext,
        outcome: dict[str, Any],
        *,
        attempt: int,
        temperature: float,
        refused: list[dict[str, Any]],
    ) -> dict[str, Any]:
        templates = [self._from_answer, self._from_observation, self._from_actions]
        goal, rationale, base = templates[attempt % len(templates)](ctx)
        severity = float(ctx.memo.get("severity", 0.5))
        confidence = base * (1 - 0.7 * error_share(ctx.steps)) * (1.1 - 0.8 * severity)
        return {
            "hindsight_goal": goal,
            "rationale": rationale,
            "confidence": round(min(1.0, max(0.0, confidence)), 3),
        }

    def _from_answer(self, ctx: ItemContext) -> tuple[str, str, float]:
        """What kind of answer the run gave, asked for in the words of what the run did."""
        answer = final_answer(ctx)
        # "Review submitted." says that something happened, not what: no goal to report it.
        acknowledgement = ACKNOWLEDGEMENT.search(answer) and len(answer.split()) <= 4
        if not content_words(answer) or acknowledgement:
            return "", "no informative final answer to build on", 0.0
        subject, value = answer_subject(answer)
        asked = asked_for(ctx, answer, subject)
        if not asked:
            return "", f"the answer gives {answer_kind(answer)} of nothing the run names", 0.0
        # Directions name the route's ends the run typed: only the time found must stay out.
        found, value = (route_finding(answer), "") if asked in ROUTE_ASKS else (answer, value)
        goal = ""
        for version in self._wordings(ctx, asked):
            if VAGUE_ASK.search(version) and not NAMED_OBJECT.search(version):
                continue  # "Browse a site and report the result" asks for nothing in particular
            if version and not leaks(version, found, value, self._site(ctx)):
                goal = sentence(version)
                break
        if not goal:
            return "", "every wording would give the answer away", 0.0
        grounded = support(answer, ctx.steps)
        kind = answer_kind(answer)
        why = f"The final answer gives {kind}; the steps show {grounded:.0%} of its content."
        return goal, why, 0.3 + 0.65 * grounded

    def _wordings(self, ctx: ItemContext, asked: str) -> list[str]:
        """The goal in the words of what the run did, then without its arguments; an address is
        found, not reported after an unrelated search."""
        if asked.startswith("report the full address of "):
            place = asked.removeprefix("report the ")
            site = self._site(ctx)
            return [f"On {site}, find the {place}" if site else f"Find the {place}"]
        return [f"{self._approach(ctx)} and {asked}", self._bare_approach(ctx, asked)]

    def _site(self, ctx: ItemContext) -> str:
        page = last_page(ctx.steps)
        return page[1] if page else ""

    def _approach(self, ctx: ItemContext) -> str:
        """How the run went about it: the site and search it used, or its tools and first input."""
        page = last_page(ctx.steps)
        typed = typed_text(ctx.steps)
        route = directions(ctx)
        if page and route:
            return f"On {page[1]}, get directions from '{route[0]}' to '{route[1]}'"
        if page:
            title, site = page
            if not any(s.action in BROWSER for s in acted_steps(ctx.steps)):
                # It answered from the page it was given: it opened nothing.
                return f"Browse {site}"
            if typed:
                return f"On {site}, search for '{typed}'"
            return f"On {site}, open the '{title}' page" if title else f"Browse {site}"
        tools = tool_names(ctx.steps)
        if not tools:
            return "From the conversation, work it out"
        return f"Use {join(tools)}{with_argument(key_argument(ctx.steps))}"

    def _bare_approach(self, ctx: ItemContext, asked: str) -> str:
        """The approach with no argument or search term, for when those give the answer away."""
        page = last_page(ctx.steps)
        if page:
            return f"Browse {page[1]} and {asked}"
        tools = tool_names(ctx.steps)
        return f"Use {join(tools)} and {asked}" if tools else ""

    def _from_observation(self, ctx: ItemContext) -> tuple[str, str, float]:
        """The last thing the environment showed: the page reached, or the last lookup's result;
        in a conversation, the last change it made, asked as the user would."""
        if is_conversation(ctx.steps):
            found = conversation_task(ctx.steps)
            if found:
                return found
        answer = final_answer(ctx)
        for step in reversed(ctx.steps):
            if not step.action or step.action in MESSAGE_ACTIONS or is_error(step):
                continue
            page = page_of(step.observation)
            if page and page[0]:
                title, site = page
                goal = f"Open the '{title}' page on {site}"
                if not leaks(goal, answer, "", site):
                    return goal, f"Step {step.index} reached that page.", 0.6
                continue
            # The observation decides only what kind of thing to ask for; it is never pasted.
            seen = first_sentence(step.observation, 160)
            if seen and step.action not in BROWSER:
                goal, base = tool_task(step.action, argument_of(step), seen)
                if leaks(goal, answer, ""):
                    goal, base = tool_task(step.action, "", seen)
                if not leaks(goal, answer, ""):
                    return goal, f"Step {step.index} did this and returned a result.", base
        return "", "no successful action to build on", 0.0

    def _from_actions(self, ctx: ItemContext) -> tuple[str, str, float]:
        """The sequence of distinct things the run did, as an ordered task."""
        acted = [
            s for s in ctx.steps if s.action and s.action not in MESSAGE_ACTIONS and not is_error(s)
        ][-6:]
        if not acted:
            return "", "no successful action to build on", 0.0
        answer = final_answer(ctx)
        page = last_page(ctx.steps)
        if page:
            plan = web_plan(acted, page)
        elif all(s.action in BROWSER for s in acted):
            plan = browser_plan(acted)
        else:
            plan = "Call " + ", then ".join(list(dict.fromkeys(map(step_phrase, acted)))[:4])
        if leaks(plan, answer, "", self._site(ctx)):
            plain = dict.fromkeys(step_phrase(s, with_arg=False) for s in acted)
            plan = "Call " + ", then ".join(list(plain)[:4])
        if len(plan.split()) < 6:
            plan = "Make a single call: " + plan[len("Call ") :]
        if len(plan.split()) < 6:
            return "", "too little was done to make a task of it", 0.0
        if leaks(plan, answer, "", self._site(ctx)):
            return "", "every wording would give the answer away", 0.0
        return plan, f"Steps {[s.index for s in acted]} did this.", 0.4

    # -- judges --------------------------------------------------------------------------------

    def panel(self) -> list[dict[str, Any]]:
        return PANEL

    def judge(self, ctx: ItemContext, judge: dict[str, Any], goal: str) -> dict[str, Any]:
        if judge["name"] == "rules-grounding":
            return self._judge_grounding(ctx, goal)
        return self._judge_specificity(goal)

    def _judge_grounding(self, ctx: ItemContext, goal: str) -> dict[str, Any]:
        achievements = ctx.memo.get("outcome", {}).get("achievements", [])
        if not achievements:
            return {"accept": False, "confidence": 0.0, "reason": "no grounded achievement"}
        unstated = unstated_answer(ctx, goal)
        if unstated:
            return {"accept": False, "confidence": 0.1, "reason": unstated}
        shown = support(goal, ctx.steps, neutral=GOAL_WORDS | tool_words(ctx.steps))
        if shown < 0.25:
            reason = f"the steps show only {shown:.0%} of what the goal asks for"
            return {"accept": False, "confidence": round(shown, 3), "reason": reason}
        grounded = len({s for a in achievements for s in a["steps"]})
        confidence = min(1.0, 0.4 + 0.15 * grounded) * (1 - 0.5 * error_share(ctx.steps))
        confidence *= 0.5 + 0.5 * shown
        return {
            "accept": True,
            "confidence": round(confidence, 3),
            "reason": f"{len(achievements)} achievement{'' if len(achievements) == 1 else 's'} "
            f"grounded to {grounded} step{'' if grounded == 1 else 's'}; "
            f"the steps show {shown:.0%} of the goal's content",
        }

    def _judge_specificity(self, goal: str) -> dict[str, Any]:
        words = len(goal.split())
        if words < 6 or words > 90:
            return {"accept": False, "confidence": 0.1, "reason": f"{words} words: not a task"}
        if MARKUP.search(goal):
            reason = "the goal pastes raw markup or JSON instead of asking for something"
            return {"accept": False, "confidence": 0.1, "reason": reason}
        if VAGUE_ASK.search(goal) and not NAMED_OBJECT.search(goal):
            reason = "the goal asks for 'the result' without saying of what"
            return {"accept": False, "confidence": 0.1, "reason": reason}
        return {"accept": True, "confidence": 0.9, "reason": f"a specific {words}-word task"}

    # -- stage 3b ------------------------------------------------------------------------------

    def rewrite(self, ctx: ItemContext, goal: str, turns: list[dict[str, Any]]) -> dict[str, Any]:
        """No model to reword turns: the pipeline's sentence filter (relabel.pipeline.consistency)
        drops every sentence that still refers to the original goal."""
        return {"turns": []}
