"""Forms of the team pages: a researcher's queue (new or edited) and a comment."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from relabel.models import Candidate, Run, RunItem, Trajectory
from relabel.roles import ROLES
from review.models import Comment, ReviewQueue

GATES = [
    ("", "any the gate did not reject"),
    (Candidate.Gate.NEEDS_REVIEW, "needs review"),
    (Candidate.Gate.AUTO_ACCEPTED, "auto-accepted"),
]
REVIEW_STATES = [
    ("", "any"),
    ("unreviewed", "not reviewed yet"),
    ("reviewed", "reviewed (a second opinion)"),
    *[(s, s) for s in ("accepted", "edited", "rejected")],
]


def people() -> Any:
    """Everyone with a role, by name: who can be a member."""
    return get_user_model().objects.filter(groups__name__in=ROLES).distinct().order_by("username")


class MembersMixin(forms.Form):
    members = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        help_text="Leave empty (and no groups) for a queue open to every annotator who is a "
        "member of no queue.",
    )
    member_groups = forms.ModelMultipleChoiceField(queryset=Group.objects.none(), required=False)
    guidelines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=50_000,
        help_text="Markdown. Raw HTML is shown as text. A change makes a new version.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["members"].queryset = people()
        self.fields["member_groups"].queryset = Group.objects.order_by("name")


class QueueForm(MembersMixin):
    """A new queue of a run: by filter, or a study (a random sample, K raters each, blind)."""

    name = forms.CharField(max_length=100)
    purpose = forms.ChoiceField(
        choices=[(p, ReviewQueue.Purpose(p).label) for p in ("custom", "study")],
        initial="custom",
    )
    gate = forms.ChoiceField(choices=GATES, required=False)
    min_confidence = forms.FloatField(required=False, min_value=0, max_value=1)
    max_confidence = forms.FloatField(required=False, min_value=0, max_value=1)
    failure_type = forms.ChoiceField(choices=[("", "any"), *RunItem.FAILURE_TYPES], required=False)
    benchmark = forms.ChoiceField(choices=[("", "any"), *Trajectory.FORMATS], required=False)
    review_state = forms.ChoiceField(choices=REVIEW_STATES, required=False)
    blind = forms.BooleanField(required=False, help_text="A study is always blind.")
    overlap = forms.IntegerField(min_value=1, max_value=10, initial=1, label="Raters per item")
    order = forms.ChoiceField(choices=ReviewQueue.ORDERS, initial=ReviewQueue.ORDERS[0][0])
    sample_size = forms.IntegerField(
        required=False, min_value=1, help_text="A study's sample of N candidates (the paper: 200)."
    )

    field_order = [
        "name", "purpose", "gate", "min_confidence", "max_confidence", "failure_type",
        "benchmark", "review_state", "blind", "overlap", "order", "sample_size", "members",
        "member_groups", "guidelines",
    ]  # fmt: skip

    def __init__(self, *args: Any, run: Run, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run = run

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if ReviewQueue.objects.filter(run=self.run, name=name).exists():
            raise forms.ValidationError(f"run {self.run.pk} already has a queue named {name!r}")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("min_confidence"), data.get("max_confidence")
        if low is not None and high is not None and low > high:
            self.add_error("max_confidence", "must not be below min_confidence")
        if data.get("purpose") == "study" and not data.get("sample_size"):
            self.add_error("sample_size", "a study needs its sample size N")
        return data

    def queue_fields(self) -> dict[str, Any]:
        """What ``review.queue.create_queue`` takes, from the cleaned form."""
        data = self.cleaned_data
        filters = {k: data[k] for k in ReviewQueue.FILTER_KEYS if data.get(k) not in ("", None)}
        study = data["purpose"] == "study"
        return {
            "name": data["name"],
            "purpose": data["purpose"],
            "blind": data["blind"] or study,
            "overlap": data["overlap"],
            "order": data["order"],
            "filters": filters,
            "sample_size": data["sample_size"] if study else None,
            "members": data["members"],
            "groups": data["member_groups"],
            "guidelines": data["guidelines"],
        }


class QueueEditForm(MembersMixin):
    """Who a queue is for, its guidelines, and whether it serves items."""

    active = forms.BooleanField(required=False, help_text="A closed queue serves nothing.")


class CommentForm(forms.Form):
    text = forms.CharField(max_length=Comment.MAX_CHARS, strip=True)
    next = forms.CharField(required=False, max_length=2000)
