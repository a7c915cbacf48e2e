"""Forms of the automatic side's pages: the admin's upload and run forms, the browse filters."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings

from relabel.endpoints import DEFAULT, declared_endpoints
from relabel.importers import SuccessScore, TrajectoryImportError, parse_mapping
from relabel.models import Candidate, Dataset, RunItem, Trajectory


class CandidateFilterForm(forms.Form):
    """Browse filters; every field is optional and bad values are reported, never guessed."""

    gate = forms.ChoiceField(choices=[("", "any"), *Candidate.Gate.choices], required=False)
    review_state = forms.ChoiceField(
        choices=[("", "any"), *Candidate.ReviewState.choices], required=False
    )
    min_confidence = forms.FloatField(required=False, min_value=0, max_value=1)
    max_confidence = forms.FloatField(required=False, min_value=0, max_value=1)
    failure_type = forms.ChoiceField(choices=[("", "any"), *RunItem.FAILURE_TYPES], required=False)
    benchmark = forms.ChoiceField(choices=[("", "any"), *Trajectory.FORMATS], required=False)
    after = forms.RegexField(regex=r"^[0-9.eE+-]+_[0-9]+$", required=False)

    def cursor(self) -> tuple[float, int] | None:
        after = self.cleaned_data.get("after")
        if not after:
            return None
        confidence, pk = after.rsplit("_", 1)
        return float(confidence), int(pk)


class UploadForm(forms.Form):
    file = forms.FileField(
        help_text="JSON, JSONL or .traj, or a .zip / .tar.gz of them or of a BrowserGym "
        "results folder."
    )
    dataset = forms.CharField(max_length=200, help_text="Imported into this dataset (created).")
    format = forms.ChoiceField(choices=[("auto", "detect"), *Trajectory.FORMATS], initial="auto")
    mapping = forms.CharField(
        required=False,
        max_length=500,
        help_text="Which fields hold what, e.g. goal=question, messages=history, "
        "success=is_correct; role.WebSurfer=assistant reads one role as user, assistant, tool "
        "or system.",
    )
    success_score = forms.CharField(
        required=False,
        max_length=200,
        help_text="Langfuse scores and LangSmith feedback: the one that means success, e.g. "
        "correctness>=0.5.",
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.AGENTHER_UPLOAD_MAX_BYTES
        if getattr(upload, "refused", False) or upload.size > limit:
            raise forms.ValidationError(
                f"{upload.name} is larger than the limit of {limit / 2**20:g} MB "
                "(AGENTHER_UPLOAD_MAX_MB)"
            )
        return upload

    def clean_mapping(self) -> dict[str, str]:
        items = [item for item in self.cleaned_data["mapping"].split(",") if item.strip()]
        try:
            return parse_mapping(items)
        except TrajectoryImportError as err:
            raise forms.ValidationError(err.message) from None

    def clean_success_score(self) -> str:
        text = self.cleaned_data["success_score"].strip()
        try:
            return str(SuccessScore.parse(text)) if text else ""
        except TrajectoryImportError as err:
            raise forms.ValidationError(err.message) from None


def _share(label: str, initial: float) -> forms.FloatField:
    return forms.FloatField(label=label, min_value=0, max_value=1, initial=initial)


class StartRunForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    backend = forms.ChoiceField(
        choices=[("rules", "rules (offline)"), ("openai", "OpenAI-compatible endpoint")]
    )
    endpoint = forms.ChoiceField(
        required=False,
        help_text="Where the openai backend's stages and judges go, unless the JSON below names "
        "another declared endpoint for one of them. Endpoints are declared by the operator "
        "(AGENTHER_ENDPOINTS); a run never names a key.",
    )
    accept_threshold = _share("Accept threshold", 0.5)
    reject_threshold = _share("Reject threshold", 0.2)
    raters_per_candidate = forms.IntegerField(min_value=1, max_value=5, initial=1)
    second_rater_share = _share("Share with a second rater", 0.0)
    audit_share = _share("Audited share of the auto-accepted", 0.1)
    consistency = forms.ChoiceField(
        label="Turns that still refer to the original goal",
        choices=[
            ("rewrite", "rewrite the agent's text (default)"),
            ("strip", "strip such thoughts"),
            ("flag", "flag the candidate for review"),
            ("off", "off (no check)"),
        ],
        required=False,
        initial="rewrite",
    )
    batch = forms.BooleanField(
        label="Through the Batch API",
        required=False,
        help_text="Half the price; answers within 24 hours (openai backend).",
    )
    extra = forms.CharField(
        label="More configuration (JSON object)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='e.g. {"judges": [{"name": "a", "model": "gpt-4o-mini"}, '
        '{"name": "b", "model": "Qwen2.5-72B-Instruct", "endpoint": "vllm"}]}',
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Declared now, not at import: the operator's declarations are read per request.
        declared = declared_endpoints()
        choices = [(name, f"{name} ({e.base_url})") for name, e in declared.items()]
        self.fields["endpoint"].choices = choices or [("", "none declared (rules only)")]
        self.fields["endpoint"].initial = DEFAULT if DEFAULT in declared else ""

    def clean_extra(self) -> dict[str, Any]:
        text = self.cleaned_data["extra"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("reject_threshold"), data.get("accept_threshold")
        if low is not None and high is not None and low > high:
            self.add_error("reject_threshold", "must not be above the accept threshold")
        return data

    def config(self) -> dict[str, Any]:
        """The configuration overrides for relabel.runs.start_run."""
        data = self.cleaned_data
        config = dict(data["extra"])
        if data.get("endpoint"):
            config["endpoint"] = data["endpoint"]
        if data.get("batch"):
            config["batch"] = True
        config["accept_threshold"] = data["accept_threshold"]
        config["reject_threshold"] = data["reject_threshold"]
        if data.get("consistency"):
            config["consistency"] = data["consistency"]
        config["review"] = {
            **config.get("review", {}),
            "raters_per_candidate": data["raters_per_candidate"],
            "second_rater_share": data["second_rater_share"],
            "audit_share": data["audit_share"],
        }
        return config


def errors_text(form: forms.Form) -> str:
    """A form's errors as one line for a message: ``field: problem; field: problem``."""
    return "; ".join(
        f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
        for name, errors in form.errors.items()
    )
