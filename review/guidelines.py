"""A queue's guidelines: Markdown written by researchers, shown to raters as safe HTML.

Two layers, each enough on its own for what it does:

1. markdown-it-py parses CommonMark with ``html`` off, so raw HTML in the text (``<script>``,
   ``<div style=...>``, comments) is not passed through but shown as text, and its link
   validator drops ``javascript:``, ``vbscript:``, ``file:`` and ``data:`` URLs.
2. nh3 (the Ammonia sanitizer) then keeps only an allow-list of tags and attributes (no ``style``,
   no event handlers, no images, no classes), only http/https/mailto and relative URLs, and gives
   every link ``rel="noopener noreferrer"`` and ``target="_blank"`` (a link never takes the rater
   away from the item they are rating).

So the output is marked safe only after a sanitizer built for it has had the last word; nothing
from a trajectory ever goes through here (trajectories are always escaped text).
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer"

_markdown = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


@lru_cache(maxsize=256)
def render_markdown(text: str) -> SafeString:
    """The Markdown ``text`` as sanitized HTML (guidelines are few and short; cached by text)."""
    html = _markdown.render(text or "")
    clean = nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags={"script", "style"},
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return mark_safe(clean)  # sanitized by nh3 just above
