"""Confidence aggregation and the gate.

Aggregation is explicit and recorded on Candidate.aggregation. The default, ``min``, takes the
lowest of the generator's and every judge's confidence: a candidate is only as trusted as its
least convinced assessor, which suits a gate whose accepted items skip human review. ``mean``
averages them instead. Either way a judge's rejection is a veto and binding: nothing overrides
it (the reference code let a fallback accept what a judge had rejected).

The gate: vetoed or below reject_threshold -> rejected (kept, with the reason); at or above
accept_threshold -> auto_accepted, unless the consistency check flagged the candidate
(relabel.pipeline.consistency); in between, or flagged -> needs_review.
"""

from __future__ import annotations

from typing import Any

from relabel.models import Candidate


def aggregate(
    generator_confidence: float, verdicts: list[dict[str, Any]], method: str = "min"
) -> dict[str, Any]:
    inputs = {"generator": round(generator_confidence, 4)}
    inputs.update({f"judge:{v['name']}": round(v["confidence"], 4) for v in verdicts})
    values = list(inputs.values())
    value = min(values) if method == "min" else sum(values) / len(values)
    return {
        "method": method,
        "inputs": inputs,
        "value": round(value, 4),
        "vetoed_by": [v["name"] for v in verdicts if not v["accept"]],
    }


def gate(
    aggregation: dict[str, Any], accept: float, reject: float, *, flagged: bool = False
) -> tuple[str, str]:
    """``flagged``: some turn still refers to the original goal (stage 3b), so a person must
    look: never auto-accepted."""
    value = aggregation["value"]
    if aggregation["vetoed_by"]:
        who = ", ".join(aggregation["vetoed_by"])
        return Candidate.Gate.REJECTED, f"vetoed by judge {who} (binding)"
    if value >= accept and flagged:
        return (
            Candidate.Gate.NEEDS_REVIEW,
            f"confidence {value:.2f} >= accept {accept:.2f}, but some turns still refer to the "
            "original goal (flagged by the consistency check)",
        )
    if value >= accept:
        return Candidate.Gate.AUTO_ACCEPTED, f"confidence {value:.2f} >= accept {accept:.2f}"
    if value >= reject:
        return (
            Candidate.Gate.NEEDS_REVIEW,
            f"confidence {value:.2f} between reject {reject:.2f} and accept {accept:.2f}",
        )
    return Candidate.Gate.REJECTED, f"confidence {value:.2f} < reject {reject:.2f}"
