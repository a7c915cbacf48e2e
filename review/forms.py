"""The form of a decision in the review queue."""

from __future__ import annotations

from typing import Any

from django import forms

from relabel.consistency_view import REWRITE_FIELD
from review.models import Verdict

MAX_REWRITES = 200


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

    def clean(self) -> dict[str, Any]:
        """Adds ``edited_rewrites``: the rewritten turns posted as ``rewrite:<key>`` fields
        (one textarea per turn, so the form works without JavaScript)."""
        data = super().clean()
        edited = {
            name.removeprefix(REWRITE_FIELD): self.data.get(name, "")
            for name in self.data
            if name.startswith(REWRITE_FIELD)
        }
        if len(edited) > MAX_REWRITES or any(len(t) > 20_000 for t in edited.values()):
            raise forms.ValidationError("edited rewrites: too many or too long")
        data["edited_rewrites"] = edited
        return data
