"""How precision figures read, for people: one wording shared by the page and the command, so
the two always print the same numbers."""

from __future__ import annotations

from typing import Any


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def show(fig: dict[str, Any]) -> str:
    """ "97.7% [93.4%, 99.2%] n=130", or "not enough verdicts: n=3", or, for a figure that says
    it is not available, its reason (which ends in its n)."""
    n = fig.get("n") or 0
    if fig.get("available") is False:
        return fig.get("reason") or f"not available: n={_count(n)}"
    if fig.get("value") is None or not fig.get("enough", True):
        return fig.get("note") or f"not enough verdicts: n={_count(n)}"
    return f"{pct(fig['value'])} [{pct(fig['low'])}, {pct(fig['high'])}] n={_count(n)}"


def show_kappa(fig: dict[str, Any]) -> str:
    n = fig.get("n") or 0
    if fig.get("value") is None:
        why = "not enough verdicts" if n < 2 or not fig.get("enough") else "undefined"
        return f"{why}: n={n}"
    if not fig.get("enough", True):
        return f"not enough verdicts: n={n}"
    bounds = "" if fig.get("low") is None else f" [{fig['low']:.3f}, {fig['high']:.3f}]"
    return f"{fig['value']:.3f}{bounds} n={n}"


def show_ece(calibration: dict[str, Any]) -> str:
    if calibration["ece"] is None or not calibration["enough"]:
        return f"not enough verdicts: n={calibration['n']}"
    return f"{calibration['ece']:.3f} n={calibration['n']}"


def show_threshold(t: dict[str, Any]) -> str:
    if t["value"] is None:
        return (
            f"no threshold reaches a lower bound of {pct(t['target'])} "
            f"on the {t['n']} rated candidates"
        )
    more = t["more"]
    change = f"{more} more" if more >= 0 else f"{-more} fewer"
    return (
        f"{t['value']:.3f} (lower bound {pct(t['low'])} on {t['rated_above']} rated): "
        f"would auto-accept {t['would_accept']}, {change} than the current "
        f"{t['current']:.3f} ({t['currently_accepted']})"
    )


def study_lines(study: dict[str, Any]) -> list[str]:
    return [
        "",
        f"study {study['name']!r}: {study['sample']} sampled, {study['raters_per_item']} "
        f"raters each, {study['complete']} complete",
        f"  precision  {study['precision_text']}",
        f"  Fleiss' kappa  {study['kappa_text']}",
    ]


def adjudication_line(a: dict[str, Any]) -> str:
    return (
        f"{a['n']} candidates ({a['approved']} approved, {a['rejected']} rejected, "
        f"{a['overturned']} against the raters' majority); {a['pending']} waiting"
    )


def _count(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else f"{n:.1f}"


def report_lines(f: dict[str, Any]) -> list[str]:
    """The readable report of ``precision`` without --json."""
    counts, verdicts = f["counts"], f["verdicts"]
    lines = [
        f"Precision of {f['run_name']} (run {f['run']}) on {f['dataset']}, "
        f"{f['backend']} backend, prompt {f['prompt_version']}",
        f"items {counts['items']}; candidates by gate: "
        + ", ".join(f"{k} {v}" for k, v in counts["by_gate"].items()),
        f"verdicts: {verdicts['total']} effective on {verdicts['rated_candidates']} "
        f"candidate{'' if verdicts['rated_candidates'] == 1 else 's'} by {verdicts['raters']} "
        f"rater{'' if verdicts['raters'] == 1 else 's'} ({verdicts['recorded']} recorded, "
        f"{verdicts['undone']} undone, {verdicts['skips']} skips): "
        + ", ".join(f"{k} {v}" for k, v in verdicts["by_decision"].items()),
        "",
        f"precision, strict   {show(f['precision_strict'])}",
        f"precision, lenient  {show(f['precision_lenient'])}",
        f"auto-accepted pool (blind audit)  {show(f['audit_precision'])}",
        f"raters' approvals (checked)       {show(f['human_precision'])}",
        f"exportable set (stratified)       {show(f['export_precision'])}",
        f"label noise                       {show(f['label_noise'])}",
        f"adjudicated  {adjudication_line(f['adjudication'])}",
        f"agreement ({f['kappa']['method'] or 'none'} kappa)  {show_kappa(f['kappa'])}",
        f"calibration ECE  {show_ece(f['calibration'])}",
        f"recommended accept threshold for {pct(f['target'])}: {show_threshold(f['threshold'])}",
    ]
    for title, key in (("benchmark", "by_benchmark"), ("failure type", "by_failure_type")):
        lines += ["", f"by {title} (strict | lenient)"]
        lines += [
            f"  {name:<22} {show(pair['strict'])} | {show(pair['lenient'])}"
            for name, pair in f[key].items()
        ]
    lines += ["", "by confidence bucket (strict | lenient)"]
    lines += [
        f"  {b['low']:.2f}-{b['high']:.2f}  {show(b['strict'])} | {show(b['lenient'])}"
        for b in f["by_bucket"]
        if b["strict"]["n"]
    ]
    for study in f["studies"]:
        lines += study_lines(study)
    if f["judges"]:
        lines += ["", "judges against the humans (agreement | kappa)"]
        lines += [
            f"  {j['name']:<22} {show(j['agreement'])} | {show_kappa(j['kappa'])}"
            for j in f["judges"]
        ]
    return lines
