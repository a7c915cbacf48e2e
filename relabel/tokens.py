"""Offline token counting and budgeting.

tiktoken downloads its encodings at first use, which fails offline; we estimate instead, and the
endpoint's own usage figures (recorded on LLMCall) stay the truth. The estimate counts words,
punctuation and long runs the way BPE tokenizers roughly do, and errs on the high side so that a
budget is never exceeded by much.
"""

from __future__ import annotations

import re

# One match per estimated token: every run of up to 4 word characters (a word of n characters
# counts 1 + (n - 1) // 4) and every punctuation mark. Counting matches keeps the loop in C: exports
# measure every row they write.
_TOKENS = re.compile(r"\w{1,4}|[^\w\s]", re.UNICODE)
TRUNCATION_MARK = "\n[... {omitted} characters omitted ...]\n"


def estimate_tokens(text: str) -> int:
    """About one token per 4 characters of a word, one per punctuation mark."""
    if not text:
        return 0
    return len(_TOKENS.findall(text))


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """Cuts ``text`` to about ``max_tokens``, keeping its head and tail with a marker between."""
    if max_tokens <= 0:
        return ""
    # Every piece counts at most one token per character: short texts need no counting.
    if len(text) <= max_tokens or estimate_tokens(text) <= max_tokens:
        return text
    # Characters per token of this text, so dense (HTML, JSON) and plain text both fit.
    ratio = max(1.0, len(text) / max(1, estimate_tokens(text)))
    keep = max(1, int(max_tokens * ratio) - len(TRUNCATION_MARK) - 10)
    head, tail = keep * 3 // 4, keep // 4
    omitted = len(text) - head - tail
    return text[:head] + TRUNCATION_MARK.format(omitted=omitted) + (text[-tail:] if tail else "")
