"""The form of a decision in the review queue."""

from __future__ import annotations

from django import forms

from review.models import Verdict


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[(d, d) for d in ("accept", "edit", "reject", "skip", "valid", "invalid")]
    )
    edited_goal = forms.CharField(required=False, max_length=20_000, strip=True)
    # An edit that takes one of the relabeler's attempts (Candidate.attempts) by its number: the
    # server reads the goal from the candidate, so the verdict's edit source is what happened.
    attempt = forms.IntegerField(required=False, min_value=1, max_value=1000)
    reason_code = forms.ChoiceField(choices=[("", "—"), *Verdict.REJECT_REASONS], required=False)
    reason = forms.CharField(required=False, max_length=5_000, strip=True)
    started_at = forms.CharField(required=False, max_length=40)
