"""The researcher pages, the downloads and the command: roles, agreement, and strict CSP."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from relabel.roles import grant_role
from review.models import Verdict
from review.precision.format import show, show_ece, show_kappa, show_threshold
from tests.factories import make_candidate, make_run, make_trajectory

pytestmark = pytest.mark.django_db


def person(username: str, role: str | None) -> Client:
    # No password: hashing one costs more than these tests; force_login does not need it.
    user = User.objects.create(username=username)
    if role:
        grant_role(user, role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def researcher_page() -> Client:
    return person("rosa", "researcher")


@pytest.fixture
def annotator_page() -> Client:
    return person("ann", "annotator")


@pytest.fixture
def reviewed_run():
    """A run with curation and audit verdicts, two raters on some candidates, and judges."""
    run = make_run()
    run.name = "prompt v1"
    run.save(update_fields=["name"])
    raters = [User.objects.create(username=f"r{i}") for i in range(2)]
    tau = make_trajectory(run.dataset, source_format="tau-bench")
    for i in range(24):
        confidence = 0.3 + (i % 7) / 10
        judges = [{"name": "mini", "model": "gpt-4o-mini", "endpoint": "e", "accept": i % 5 != 0}]
        c = make_candidate(
            run,
            confidence=confidence,
            judges=judges,
            trajectory=tau if i == 0 else None,
            failure_type="wrong_result" if i % 3 else "incomplete",
        )
        kind = "audit" if c.gate == "auto_accepted" else "curation"
        valid = "valid" if kind == "audit" else "accept"
        invalid = "invalid" if kind == "audit" else "reject"
        decision = invalid if i % 6 == 0 else "edit" if (i % 4 == 1 and kind != "audit") else valid
        Verdict.objects.create(candidate=c, rater=raters[0], kind=kind, decision=decision)
        if i % 2 == 0:
            second = invalid if i % 8 == 0 else valid
            Verdict.objects.create(candidate=c, rater=raters[1], kind=kind, decision=second)
    for _ in range(5):
        make_candidate(run, confidence=0.9)  # unrated auto-accepted
    return run


def command_json(*args: str) -> dict:
    out = io.StringIO()
    call_command("precision", *args, "--json", stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def text_of(html: str) -> str:
    """The page's text, with tags dropped and entities of our wording undone."""
    text = re.sub(r"<[^>]+>", " ", html).replace("&#x27;", "'").replace("&amp;", "&")
    return re.sub(r"\s+", " ", text)


def test_the_page_and_the_command_print_the_same_figures(researcher_page, reviewed_run):
    figures = command_json("--run", str(reviewed_run.pk))
    page = researcher_page.get(reverse("precision:run", args=[reviewed_run.pk]))
    assert page.status_code == 200
    text = text_of(page.content.decode())
    for key in ("precision_strict", "precision_lenient", "audit_precision", "export_precision"):
        assert show(figures[key]) in text, key
    assert show(figures["label_noise"]) in text
    assert show_kappa(figures["kappa"]) in text
    assert show_ece(figures["calibration"]) in text
    assert show_threshold(figures["threshold"]) in text
    for name, pair in figures["by_failure_type"].items():
        assert f"{name} {show(pair['strict'])} {show(pair['lenient'])}" in text
    for judge in figures["judges"]:
        assert show(judge["agreement"]) in text
    # The wording is a rounding of the exact numbers, so make sure it is not empty wording.
    strict = figures["precision_strict"]
    assert f"{100 * strict['value']:.1f}% [{100 * strict['low']:.1f}%" in text


def test_the_json_download_is_what_the_command_prints(researcher_page, reviewed_run):
    url = reverse("precision:download", args=[reviewed_run.pk, "json"])
    response = researcher_page.get(url + "?target=0.9")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    assert response.json() == command_json("--run", str(reviewed_run.pk), "--target", "0.9")


def test_the_csv_download_holds_every_figure(researcher_page, reviewed_run):
    response = researcher_page.get(reverse("precision:download", args=[reviewed_run.pk, "csv"]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    strict = next(r for r in rows if r["figure"] == "precision_strict")
    figures = command_json("--run", str(reviewed_run.pk))
    assert float(strict["low"]) == pytest.approx(figures["precision_strict"]["low"])
    assert int(strict["n"]) == figures["precision_strict"]["n"]
    assert {"audit_precision", "export_precision", "label_noise", "ece"} <= {
        r["figure"] for r in rows
    }


def test_an_unknown_download_format_is_not_found(researcher_page, reviewed_run):
    url = reverse("precision:download", args=[reviewed_run.pk, "xlsx"])
    assert researcher_page.get(url).status_code == 404


def test_annotators_get_403_on_every_precision_page(annotator_page, reviewed_run):
    urls = [
        reverse("precision:run", args=[reviewed_run.pk]),
        reverse("precision:download", args=[reviewed_run.pk, "json"]),
        reverse("precision:compare") + f"?a={reviewed_run.pk}&b={reviewed_run.pk}",
    ]
    for url in urls:
        assert annotator_page.get(url).status_code == 403, url


def test_people_not_logged_in_are_sent_to_the_login_page(reviewed_run):
    response = Client().get(reverse("precision:run", args=[reviewed_run.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_admins_see_the_page(reviewed_run):
    page = person("ada", "admin").get(reverse("precision:run", args=[reviewed_run.pk]))
    assert page.status_code == 200


def test_an_unknown_run_is_not_found(researcher_page):
    assert researcher_page.get(reverse("precision:run", args=[999999])).status_code == 404


def test_the_page_draws_its_plots_as_inline_svg_without_scripts_or_inline_styles(
    researcher_page, reviewed_run
):
    page = researcher_page.get(reverse("precision:run", args=[reviewed_run.pk])).content.decode()
    html = page[page.index("<main") : page.index("</main>")]  # ours; base.html is the lead's
    assert html.count("<svg") == 2 and 'class="rbar"' in html and 'class="bar series-0"' in html
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert "css/precision.css" in html


def test_a_run_without_enough_verdicts_says_so_instead_of_a_number(researcher_page):
    run = make_run()
    rater = User.objects.create(username="solo")
    for _ in range(3):
        Verdict.objects.create(
            candidate=make_candidate(run), rater=rater, kind="curation", decision="accept"
        )
    text = text_of(researcher_page.get(reverse("precision:run", args=[run.pk])).content.decode())
    assert "not enough verdicts: n=3" in text
    assert "100.0%" not in text
    out = io.StringIO()
    call_command("precision", "--run", str(run.pk), stdout=out)
    assert "precision, strict   not enough verdicts: n=3" in out.getvalue()
    figures = command_json("--run", str(run.pk))
    assert figures["precision_strict"]["n"] == 3 and figures["precision_strict"]["enough"] is False


def test_the_target_is_a_field_of_the_page(researcher_page, reviewed_run):
    url = reverse("precision:run", args=[reviewed_run.pk])
    page = researcher_page.get(url + "?target=0.8")
    figures = command_json("--run", str(reviewed_run.pk), "--target", "0.8")
    text = text_of(page.content.decode())
    assert 'name="target"' in page.content.decode() and 'value="0.8"' in page.content.decode()
    assert show_threshold(figures["threshold"]) in text


def test_a_bad_target_is_reported_and_the_default_used(researcher_page, reviewed_run):
    url = reverse("precision:run", args=[reviewed_run.pk])
    page = researcher_page.get(url + "?target=lots")
    assert page.status_code == 200
    assert "target &#x27;lots&#x27; is not a number: using 0.97" in page.content.decode()


def test_htmx_gets_only_the_figures(researcher_page, reviewed_run):
    url = reverse("precision:run", args=[reviewed_run.pk])
    response = researcher_page.get(url + "?target=0.9", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="figures">') and "<html" not in html


def test_two_runs_side_by_side(researcher_page, reviewed_run):
    other = make_run(reviewed_run.dataset)
    other.name = "prompt v2"
    other.save(update_fields=["name"])
    url = reverse("precision:compare") + f"?a={reviewed_run.pk}&b={other.pk}"
    page = researcher_page.get(url)
    assert page.status_code == 200
    text = text_of(page.content.decode())
    a = command_json("--run", str(reviewed_run.pk))
    assert f"Precision, strict {show(a['precision_strict'])} not enough verdicts: n=0" in text
    assert "A − B (95% interval)" in text
    assert "prompt v1" in text and "prompt v2" in text


def test_the_comparison_page_first_asks_for_two_runs(researcher_page, reviewed_run):
    page = researcher_page.get(reverse("precision:compare"))
    html = page.content.decode()
    assert page.status_code == 200 and 'name="a"' in html
    assert reverse("precision:run", args=[reviewed_run.pk]) in html


def test_the_command_refuses_an_unknown_run():
    with pytest.raises(CommandError, match="no run with id 424242"):
        call_command("precision", "--run", "424242", "--json")


def test_the_command_prints_a_readable_report(reviewed_run):
    out = io.StringIO()
    call_command("precision", "--run", str(reviewed_run.pk), stdout=out)
    report = out.getvalue()
    assert "precision, strict" in report and "exportable set" in report
    assert "{" not in report


def test_the_command_json_has_the_documented_keys(reviewed_run):
    figures = command_json("--run", str(reviewed_run.pk))
    documented = {
        "run",
        "verdicts",
        "precision_strict",
        "precision_lenient",
        "audit_precision",
        "export_precision",
        "by_bucket",
        "by_failure_type",
        "kappa",
        "ece",
        "recommended_threshold",
    }
    assert documented <= set(figures)
    assert set(figures["precision_strict"]) >= {"value", "low", "high", "n"}
    assert isinstance(figures["by_bucket"], list) and isinstance(figures["by_failure_type"], dict)


def test_a_run_compared_with_itself_shows_no_clear_difference(researcher_page, reviewed_run):
    url = reverse("precision:compare") + f"?a={reviewed_run.pk}&b={reviewed_run.pk}"
    text = text_of(researcher_page.get(url).content.decode())
    assert "Precision, strict" in text
    assert re.search(r"\+0\.0 points \[-\d+\.\d, \+\d+\.\d\]: no clear difference", text)


def test_a_comparison_with_a_bad_run_id_is_not_found(researcher_page):
    assert researcher_page.get(reverse("precision:compare") + "?a=x&b=1").status_code == 404
