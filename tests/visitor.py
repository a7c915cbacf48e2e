"""A person's browser as far as a server can tell, over real HTTP: cookies, redirects and forms
filled in from the page itself (hidden fields and CSRF token included), no JavaScript."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser
from http.cookiejar import CookieJar


@dataclass
class Page:
    status: int
    url: str
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def form(self, action: str) -> Form:
        parser = FormParser()
        parser.feed(self.text)
        for form in parser.forms:
            if form.action == action:
                return form
        raise AssertionError(f"no form posting to {action!r} on {self.url}")


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, str]] = field(default_factory=dict)  # select: label -> value


class FormParser(HTMLParser):
    """The forms of a page with the values a browser would send if nothing were changed."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._select: str | None = None
        self._option: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", "")))
        elif not self.forms:
            return
        elif tag == "option" and self._select:
            self._option_starts(self.forms[-1], a)
        elif "name" not in a:
            return
        elif tag == "input":
            self._input(self.forms[-1], a)
        elif tag == "select":
            self._select = a["name"]
            self.forms[-1].options[a["name"]] = {}
        elif tag == "textarea":
            self._textarea = a["name"]
            self.forms[-1].fields[a["name"]] = ""

    @staticmethod
    def _input(form: Form, a: dict[str, str]) -> None:
        kind = a.get("type", "text")
        if kind in ("submit", "button", "image", "reset"):
            return
        if kind in ("checkbox", "radio"):
            if "checked" in a:
                form.fields[a["name"]] = a.get("value", "on")
            return
        form.fields[a["name"]] = a.get("value", "")

    def _option_starts(self, form: Form, a: dict[str, str]) -> None:
        assert self._select is not None
        self._option = a.get("value", "")
        if not form.options[self._select] or "selected" in a:
            form.fields[self._select] = self._option

    def handle_data(self, data: str) -> None:
        if self._option is not None and self._select:
            self.forms[-1].options[self._select][data.strip()] = self._option
            self._option = None
        elif self._textarea:
            self.forms[-1].fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the redirect itself is the answer


class Visitor:
    def __init__(self, base_url: str, follow_redirects: bool = True) -> None:
        self.base_url = base_url
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.HTTPCookieProcessor(CookieJar())
        ]
        if not follow_redirects:
            handlers.append(NoRedirects())
        self.opener = urllib.request.build_opener(*handlers)

    def get(self, path: str, **headers: str) -> Page:
        return self._open(urllib.request.Request(self.base_url + path, headers=headers))

    def submit(self, page: Page, form: Form) -> Page:
        """Posts the form as the browser would: to its action, from the page it is on."""
        url = urllib.parse.urljoin(page.url, form.action)
        data = urllib.parse.urlencode(form.fields).encode()
        return self._open(urllib.request.Request(url, data=data, headers={"Referer": page.url}))

    def _open(self, request: urllib.request.Request) -> Page:
        try:
            with self.opener.open(request, timeout=30) as response:
                return Page(response.status, response.url, response.headers, response.read())
        except urllib.error.HTTPError as err:
            return Page(err.code, err.url, err.headers, err.read())
