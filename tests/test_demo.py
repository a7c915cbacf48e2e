"""`make demo` end to end (without serving): users, the sample, a finished run, a review queue."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from relabel.models import Candidate, Run
from relabel.roles import role_of
from review.models import ReviewTask


@pytest.mark.django_db(transaction=True)
def test_the_demo_relabels_the_sample_and_prints_what_it_did():
    out = StringIO()
    call_command("demo", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "imported the bundled sample" in text
    run = Run.objects.get()
    assert run.status == Run.Status.FINISHED and run.backend == "rules"
    gates = set(Candidate.objects.for_run(run).values_list("gate", flat=True))
    assert gates == {"auto_accepted", "needs_review", "rejected"}
    assert ReviewTask.objects.filter(candidate__run=run).exists()
    assert {role_of(u) for u in User.objects.all()} == {"admin", "annotator", "researcher"}


@pytest.mark.django_db(transaction=True)
def test_running_the_demo_twice_imports_nothing_new():
    call_command("demo", "--no-serve", stdout=StringIO())
    out = StringIO()
    call_command("demo", "--no-serve", stdout=out)
    assert "'imported': 0" in out.getvalue()
    assert Run.objects.count() == 2
