from __future__ import annotations

from typing import Any

from django import forms

from relabel.models import Run
from review.exports.options import DEFAULT_OBSERVATION_TOKENS, FORMATS, ExportError, ExportOptions


class RunChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, run: Run) -> str:
        name = f" {run.name}" if run.name else ""
        return f"#{run.pk}{name} on {run.dataset.name} ({run.backend}, {run.status})"


class ExportForm(forms.Form):
    run = RunChoiceField(queryset=Run.objects.select_related("dataset").order_by("-id"))
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS])
    human_verified_only = forms.BooleanField(
        required=False, help_text="Only candidates a person accepted, edited or found valid."
    )
    min_confidence = forms.FloatField(
        required=False, min_value=0.0, max_value=1.0, help_text="Only confidence at or above."
    )
    include_successes = forms.BooleanField(
        required=False,
        help_text="Also the run's successful trajectories, as a separate file (sft, sharegpt).",
    )
    observation_tokens = forms.IntegerField(
        min_value=1,
        initial=DEFAULT_OBSERVATION_TOKENS,
        help_text="Each observation is cut to this many tokens, the same in every format.",
    )
    csv = forms.BooleanField(required=False, label="CSV", help_text="Verdicts as CSV.")
    consistent_only = forms.BooleanField(
        required=False,
        help_text="Leave out rows with turns that still refer to the original goal (sft, dpo, "
        "sharegpt).",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        try:
            self.options = ExportOptions.from_filters(data["format"], data)
        except ExportError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data
