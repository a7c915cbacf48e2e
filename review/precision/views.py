"""Researcher pages: the precision of one run, its downloads, and two runs side by side."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from relabel.models import Run
from relabel.roles import require_role
from review.precision import charts, stats
from review.precision.figures import DEFAULT_TARGET, run_figures
from review.precision.format import (
    adjudication_line,
    pct,
    show,
    show_ece,
    show_kappa,
    show_threshold,
)
from review.precision.table import figures_csv


def _run(run_id: int) -> Run:
    return get_object_or_404(Run.objects.select_related("dataset"), pk=run_id)


def _target(request: HttpRequest) -> tuple[float, str]:
    """The target precision from ``?target=``, and an error to show when it is unusable."""
    raw = request.GET.get("target", "").strip()
    if not raw:
        return DEFAULT_TARGET, ""
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TARGET, f"target {raw!r} is not a number: using {DEFAULT_TARGET}"
    if not 0 < value < 1:
        return DEFAULT_TARGET, f"target {raw} must lie between 0 and 1: using {DEFAULT_TARGET}"
    return value, ""


def page_context(figures: dict[str, Any]) -> dict[str, Any]:
    """Everything the run page shows, worded once (review.precision.format) for page and
    command alike."""
    rows = charts.headline(figures)
    bucket_rows = [b for b in figures["by_bucket"] if b["strict"]["n"]]
    return {
        "f": figures,
        "headline": rows,
        "intervals": charts.interval_chart([{**r, "figs": [r["fig"]]} for r in rows]),
        "reliability": charts.reliability_chart(figures["calibration"]["bins"]),
        "kappa_text": show_kappa(figures["kappa"]),
        "ece_text": show_ece(figures["calibration"]),
        "threshold_text": show_threshold(figures["threshold"]),
        "noise_text": show(figures["label_noise"]),
        "adjudication_text": adjudication_line(figures["adjudication"]),
        "adjudicated_text": show(figures["adjudication"]["precision_strict"]),
        "target_pct": pct(figures["target"]),
        "strata": [
            {**pool, "unrated": rest["size"]}
            for pool, rest in zip(
                figures["audit_precision"]["strata"],
                figures["export_precision"]["strata"],
                strict=True,
            )
        ],
        "buckets": [
            {**b, "strict_text": show(b["strict"]), "lenient_text": show(b["lenient"])}
            for b in bucket_rows
        ],
        "groups": [
            (title, [(name, show(p["strict"]), show(p["lenient"])) for name, p in f.items()])
            for title, f in (
                ("benchmark", figures["by_benchmark"]),
                ("failure type", figures["by_failure_type"]),
            )
        ],
        "judges": [
            {**j, "agreement_text": show(j["agreement"]), "kappa_text": show_kappa(j["kappa"])}
            for j in figures["judges"]
        ],
    }


@require_GET
@require_role("researcher")
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run(run_id)
    target, target_error = _target(request)
    context = {
        "run": run,
        "target": target,
        "target_error": target_error,
        **page_context(run_figures(run, target=target)),
    }
    template = "precision/run.html"
    if request.htmx:
        template += "#figures"
    return render(request, template, context)


@require_GET
@require_role("researcher")
def download(request: HttpRequest, run_id: int, fmt: str) -> HttpResponse:
    if fmt not in ("json", "csv"):
        raise Http404(f"no {fmt!r} download: choose json or csv")
    run = _run(run_id)
    target, _ = _target(request)
    figures = run_figures(run, target=target)
    name = f"precision-run-{run.pk}.{fmt}"
    if fmt == "json":
        response: HttpResponse = JsonResponse(figures, json_dumps_params={"indent": 2})
    else:
        response = HttpResponse(figures_csv(figures), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _picked(request: HttpRequest, key: str) -> Run | None:
    raw = request.GET.get(key, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise Http404(f"{key}={raw!r} is not a run id")
    return _run(int(raw))


@require_GET
@require_role("researcher")
def compare(request: HttpRequest) -> HttpResponse:
    a, b = _picked(request, "a"), _picked(request, "b")
    target, target_error = _target(request)
    context: dict[str, Any] = {
        "runs": Run.objects.select_related("dataset").order_by("-id")[:200],
        "a": a,
        "b": b,
        "target": target,
        "target_error": target_error,
    }
    if a and b:
        context.update(comparison(run_figures(a, target=target), run_figures(b, target=target)))
    return render(request, "precision/compare.html", context)


def comparison(fa: dict[str, Any], fb: dict[str, Any]) -> dict[str, Any]:
    """Rows of the same figures of two runs, and whether their intervals overlap."""
    ha, hb = charts.headline(fa), charts.headline(fb)
    labels = list(dict.fromkeys([r["label"] for r in ha] + [r["label"] for r in hb]))
    by_a, by_b = {r["label"]: r for r in ha}, {r["label"]: r for r in hb}
    empty = {"value": None, "n": 0, "enough": False}
    rows = []
    for label in labels:
        fig_a = by_a.get(label, {"fig": empty})["fig"]
        fig_b = by_b.get(label, {"fig": empty})["fig"]
        rows.append(
            {"label": label, "figs": [fig_a, fig_b], "a": show(fig_a), "b": show(fig_b)}
            | {"verdict": _difference(fig_a, fig_b)}
        )
    extra = [
        ("Agreement (kappa)", show_kappa(fa["kappa"]), show_kappa(fb["kappa"])),
        ("Calibration (ECE)", show_ece(fa["calibration"]), show_ece(fb["calibration"])),
        ("Recommended threshold", show_threshold(fa["threshold"]), show_threshold(fb["threshold"])),
        ("Label noise", show(fa["label_noise"]), show(fb["label_noise"])),
    ]
    return {
        "fa": fa,
        "fb": fb,
        "rows": rows,
        "extra": extra,
        "chart": charts.interval_chart(rows, series=2),
    }


def _difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A minus B in percentage points with Newcombe's interval, or why there is none."""
    if not (a.get("enough") and b.get("enough")) or a.get("value") is None or b["value"] is None:
        return "not enough verdicts"
    diff, low, high = stats.difference(
        (a["value"], a["low"], a["high"]), (b["value"], b["low"], b["high"])
    )
    shown = f"{100 * diff:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]"
    if low > 0:
        return f"{shown}: A higher"
    if high < 0:
        return f"{shown}: B higher"
    return f"{shown}: no clear difference"
