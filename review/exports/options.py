"""What an export is asked for: its format and filters, checked in one place for the command,
the page and the background task alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FORMATS = ("sft", "dpo", "sharegpt", "verdicts")
DEFAULT_OBSERVATION_TOKENS = 2048


class ExportError(ValueError):
    """A bad export request: the message says which option is wrong and why."""


@dataclass(frozen=True)
class ExportOptions:
    format: str
    human_verified_only: bool = False
    min_confidence: float | None = None
    include_successes: bool = False
    observation_tokens: int = DEFAULT_OBSERVATION_TOKENS
    csv: bool = False
    # Leave out rows with unresolved consistency findings (relabel.pipeline.consistency).
    consistent_only: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ExportError(f"unknown format {self.format!r}: choose one of {', '.join(FORMATS)}")
        if self.observation_tokens is None or self.observation_tokens < 1:
            raise ExportError(
                f"--observation-tokens must be a positive number of tokens, "
                f"not {self.observation_tokens}"
            )
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ExportError(
                f"--min-confidence must be between 0 and 1, not {self.min_confidence}"
            )
        if self.include_successes and self.format not in ("sft", "sharegpt"):
            # DPO already pairs successes with failures of the same task; verdicts are about
            # candidates. A success-only baseline is training data, so only the SFT forms.
            raise ExportError("--include-successes applies to the sft and sharegpt formats only")
        if self.consistent_only and self.format == "verdicts":
            # The verdicts table is every candidate, findings and all, for researchers.
            raise ExportError("--consistent-only applies to the sft, dpo and sharegpt formats")
        if self.csv and self.format != "verdicts":
            raise ExportError("--csv applies to the verdicts format only")

    def as_filters(self) -> dict[str, Any]:
        """The filters as stored on ExportJob.filters and written to the manifest."""
        data = asdict(self)
        data.pop("format")
        return data

    @classmethod
    def from_filters(cls, format: str, filters: dict[str, Any]) -> ExportOptions:
        known = {k: v for k, v in (filters or {}).items() if k in cls.__dataclass_fields__}
        known.pop("format", None)
        return cls(format=format, **known)
