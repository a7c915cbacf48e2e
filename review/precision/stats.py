"""The statistics behind the precision page: pure functions on plain numbers, no Django.

Every interval is a 95% interval unless a caller passes another ``z``. The methods (Wilson score
intervals, Cohen's kappa with Cohen's large-sample standard error, Fleiss' kappa with a
fixed-seed percentile bootstrap over items, post-stratified proportions with a Wilson interval on
the effective sample size, the exported set's stratified estimate with Jeffreys posteriors
combined by Monte Carlo, ECE over equal-width bins) are described in the README, "Measuring
precision".
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20260522
MC_DRAWS = 20_000
MC_SEED = 20261202


@dataclass(frozen=True)
class Proportion:
    """k successes out of n with its interval; ``value`` etc. are None when n == 0."""

    k: float
    n: float
    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(k: float, n: float, z: float = Z95) -> Proportion:
    """Wilson score interval of k/n (Wilson 1927); n may be an effective, non-integer size."""
    if n <= 0:
        return Proportion(k=k, n=n, value=None, low=None, high=None)
    p = k / n
    return _wilson_at(p, n, z, k=k, n_reported=n)


def _wilson_at(p: float, n: float, z: float, *, k: float, n_reported: float) -> Proportion:
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Rounding can push a bound a hair past [0, 1] (or past p when p is 0 or 1).
    low, high = max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))
    return Proportion(k=k, n=n_reported, value=p, low=low, high=high)


# -- agreement --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kappa:
    value: float | None
    low: float | None
    high: float | None
    n: int
    observed: float | None
    expected: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]], z: float = Z95) -> Kappa:
    """Cohen's kappa of two raters over items, with Cohen's (1960) large-sample interval.

    SE = sqrt(p_o (1 - p_o) / (n (1 - p_e)^2)); the interval is kappa +- z SE, clipped to
    [-1, 1]. Kappa is undefined (None) when chance agreement is 1 (both raters used one
    category only).
    """
    n = len(pairs)
    if n == 0:
        return Kappa(None, None, None, 0, None, None)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected >= 1:
        return Kappa(None, None, None, n, observed, expected)
    kappa = (observed - expected) / (1 - expected)
    se = math.sqrt(observed * (1 - observed) / (n * (1 - expected) ** 2))
    low, high = max(-1.0, kappa - z * se), min(1.0, kappa + z * se)
    return Kappa(kappa, low, high, n, observed, expected)


def _fleiss_from(patterns: Sequence[Sequence[int]], weights: Sequence[int]) -> tuple:
    """Kappa, P-bar and P-bar_e of items given as distinct rows of counts and how often each
    occurs. Each item's agreement uses its own number of raters; category shares are over all
    ratings (Fleiss' formula when every item has the same number)."""
    items = sum(weights)
    agreement = sum(
        w * sum(c * (c - 1) for c in row) / (sum(row) * (sum(row) - 1))
        for row, w in zip(patterns, weights, strict=True)
    )
    totals = [
        sum(w * row[j] for row, w in zip(patterns, weights, strict=True))
        for j in range(len(patterns[0]))
    ]
    shares = [t / sum(totals) for t in totals]
    observed = agreement / items
    expected = sum(p * p for p in shares)
    if expected >= 1:
        return None, observed, expected
    return (observed - expected) / (1 - expected), observed, expected


def fleiss_kappa(
    table: Sequence[Sequence[int]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Kappa:
    """Fleiss' (1971) kappa of a subjects x categories table of rating counts.

    Items may have different numbers of raters (each at least two). The 95% interval is the
    percentile interval of a bootstrap over items with a fixed seed (so the page and the command
    print the same bounds); Fleiss' own variance formula holds only under the null hypothesis of
    chance agreement, so it gives a test, not an interval.
    """
    if not table:
        return Kappa(None, None, None, 0, None, None)
    for row in table:
        if sum(row) < 2:
            raise ValueError(f"Fleiss' kappa needs at least two ratings per item, got {row}")
    # Items are few distinct rows (two categories, a handful of raters): resampling n items with
    # replacement is drawing how often each distinct row occurs (a multinomial), which keeps the
    # bootstrap independent of the number of items.
    counts = Counter(tuple(row) for row in table)
    distinct, weights = list(counts), list(counts.values())
    kappa, observed, expected = _fleiss_from(distinct, weights)
    if kappa is None:
        return Kappa(None, None, None, len(table), observed, expected)
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        value, _, _ = _fleiss_from(distinct, multinomial(rng, len(table), weights))
        if value is not None:
            draws.append(value)
    low, high = _percentiles(draws, 0.025, 0.975) if draws else (None, None)
    return Kappa(kappa, low, high, len(table), observed, expected)


def multinomial(rng: random.Random, n: int, weights: Sequence[int]) -> list[int]:
    """One multinomial draw of n over categories in proportion to ``weights``, as a chain of
    binomials."""
    out, left, mass = [], n, float(sum(weights))
    for w in weights:
        k = rng.binomialvariate(left, min(1.0, w / mass)) if left and mass > 0 else 0
        out.append(k)
        left, mass = left - k, mass - w
    return out


def _percentiles(values: list[float], *qs: float) -> tuple[float, ...]:
    """Percentiles by linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    out = []
    for q in qs:
        pos = q * (len(ordered) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(ordered) - 1)
        out.append(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
    return tuple(out)


def counts_table(ratings: Iterable[Sequence[Hashable]], categories: Sequence[Hashable]) -> list:
    """Turns each item's list of ratings into a row of counts per category."""
    return [[sum(r == c for r in item) for c in categories] for item in ratings]


# -- calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    n: int
    k: int
    mean_confidence: float | None
    accuracy: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bin_index(confidence: float, bins: int) -> int:
    """Equal-width bins over [0, 1]; a confidence of exactly 1 belongs to the last bin."""
    clamped = min(max(confidence, 0.0), 1.0)
    return min(int(clamped * bins), bins - 1)


def reliability_bins(pairs: Iterable[tuple[float, bool]], bins: int = 10) -> list[Bin]:
    """Mean confidence and observed share valid in each of ``bins`` equal-width bins."""
    sums = [[0, 0, 0.0] for _ in range(bins)]  # n, k, sum of confidences
    for confidence, valid in pairs:
        acc = sums[bin_index(confidence, bins)]
        acc[0] += 1
        acc[1] += int(bool(valid))
        acc[2] += confidence
    out = []
    for i, (n, k, total) in enumerate(sums):
        out.append(
            Bin(
                low=round(i / bins, 10),
                high=round((i + 1) / bins, 10),
                n=n,
                k=k,
                mean_confidence=total / n if n else None,
                accuracy=k / n if n else None,
            )
        )
    return out


def expected_calibration_error(bins: Sequence[Bin]) -> float | None:
    """ECE = sum over bins of (n_b / N) |accuracy_b - mean confidence_b| (Guo et al. 2017)."""
    total = sum(b.n for b in bins)
    if total == 0:
        return None
    return sum(b.n / total * abs(b.accuracy - b.mean_confidence) for b in bins if b.n)


# -- stratified estimate ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stratum:
    """One stratum: its population size, and k valid out of n sampled from it."""

    size: int
    k: int
    n: int


@dataclass(frozen=True)
class StratifiedEstimate:
    value: float | None
    low: float | None
    high: float | None
    n: int
    variance: float | None
    effective_n: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collapse_empty_strata(strata: Sequence[Stratum]) -> list[Stratum]:
    """Merges each stratum that has members but no sample into its neighbour (the next one, or
    the previous for the last), so every stratum left can be estimated; drops empty ones."""
    out: list[Stratum] = []
    carry = 0
    for s in strata:
        if s.size == 0 and s.n == 0:
            continue
        if s.n == 0:
            carry += s.size
            continue
        out.append(Stratum(size=s.size + carry, k=s.k, n=s.n))
        carry = 0
    if carry and out:
        last = out[-1]
        out[-1] = Stratum(size=last.size + carry, k=last.k, n=last.n)
    elif carry:
        return []  # members but no sample anywhere: nothing to estimate from
    return out


def stratified_proportion(strata: Sequence[Stratum], z: float = Z95) -> StratifiedEstimate:
    """The share valid of a population made of strata, each estimated from its own sample.

    value = sum_h W_h p_h with W_h = size_h / size; variance = sum_h W_h^2 p_h (1 - p_h) / n_h
    (sampling with replacement: the sampled items are not part of what is estimated, see the
    README section). The interval is Wilson's at the effective sample size p (1 - p) / variance
    (Kish's design effect), which keeps the bounds inside [0, 1] and honest near 1; when every
    stratum is all-valid or all-invalid the variance is 0 and the total sample size is used.
    """
    strata = collapse_empty_strata(strata)
    sampled = sum(s.n for s in strata)
    size = sum(s.size for s in strata)
    if not strata or size == 0:
        return StratifiedEstimate(None, None, None, sampled, None, None)
    value = sum(s.size / size * s.k / s.n for s in strata)
    variance = sum((s.size / size) ** 2 * (s.k / s.n) * (1 - s.k / s.n) / s.n for s in strata)
    effective = value * (1 - value) / variance if variance > 0 else float(sampled)
    interval = _wilson_at(value, effective, z, k=value * effective, n_reported=effective)
    return StratifiedEstimate(value, interval.low, interval.high, sampled, variance, effective)


def with_verified(verified: int, estimated: int, pool: StratifiedEstimate) -> dict[str, Any]:
    """Precision of a set made of ``verified`` items known to be valid and ``estimated`` items
    whose precision ``pool`` estimates: a weighted mean, so the pool's bounds map linearly."""
    total = verified + estimated
    if total == 0:
        return {"value": None, "low": None, "high": None}
    if estimated == 0:
        return {"value": 1.0, "low": 1.0, "high": 1.0}
    if pool.value is None:
        return {"value": None, "low": None, "high": None}
    w = estimated / total

    def mix(p: float) -> float:
        return (1 - w) + w * p

    return {"value": mix(pool.value), "low": mix(pool.low), "high": mix(pool.high)}


@dataclass(frozen=True)
class Part:
    """One stratum of a population: its share of the population, and k valid of n checked."""

    weight: float
    k: float
    n: int


def stratified_jeffreys(
    parts: Sequence[Part], *, draws: int = MC_DRAWS, seed: int = MC_SEED, level: float = 0.95
) -> tuple[float, float, float] | None:
    """(value, low, high) of the share valid of a population made of strata, each estimated
    from its own sample; None when a stratum with members has no sample.

    value = sum_h W_h k_h / n_h (the usual stratified estimate). The interval: each stratum's
    share has the Jeffreys posterior Beta(k_h + 1/2, n_h - k_h + 1/2) (the Jeffreys interval of a
    single proportion, which behaves well near 0 and 1), the strata are independent, and the
    bounds are the percentiles of sum_h W_h theta_h over ``draws`` Monte Carlo draws with a fixed
    seed (so the page, the command and the manifest print the same bounds). A stratum's
    uncertainty shrinks with its own n only: a small stratum keeps the interval wide in
    proportion to its weight, and no finite sample gives a zero-width interval, even one that is
    all valid (where Wilson's variance-based forms collapse).
    """
    parts = [p for p in parts if p.weight > 0]
    if not parts or any(p.n <= 0 for p in parts):
        return None
    total = sum(p.weight for p in parts)
    weights = [p.weight / total for p in parts]
    value = sum(w * p.k / p.n for w, p in zip(weights, parts, strict=True))
    shapes = [(p.k + 0.5, p.n - p.k + 0.5) for p in parts]
    rng = random.Random(seed)
    beta = rng.betavariate
    sums = [
        sum(w * beta(a, b) for w, (a, b) in zip(weights, shapes, strict=True)) for _ in range(draws)
    ]
    tail = (1 - level) / 2
    low, high = _percentiles(sums, tail, 1 - tail)
    # The point estimate is not the posterior's centre: near 1 it can lie above the upper
    # percentile, and the interval must contain it.
    return value, min(low, value), max(high, value)


# -- threshold --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    threshold: float
    k: int
    n: int
    low: float
    value: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend_threshold(
    pairs: Iterable[tuple[float, bool]], target: float, z: float = Z95
) -> Threshold | None:
    """The lowest confidence t such that the Wilson lower bound of the precision of the rated
    items with confidence >= t reaches ``target``; None when no t does.

    Only confidences that occur among rated items are tried: between two of them the rated set
    does not change.
    """
    ordered = sorted(pairs, key=lambda p: p[0], reverse=True)
    best: Threshold | None = None
    k = n = 0
    for i, (confidence, valid) in enumerate(ordered):
        k += int(bool(valid))
        n += 1
        if i + 1 < len(ordered) and ordered[i + 1][0] == confidence:
            continue  # ties: the threshold admits all of them at once
        interval = wilson(k, n, z)
        if interval.low is not None and interval.low >= target:
            best = Threshold(confidence, k, n, interval.low, interval.value)
    return best


# -- comparing two runs -----------------------------------------------------------------------


def difference(
    a: tuple[float, float, float], b: tuple[float, float, float]
) -> tuple[float, float, float]:
    """a - b for two independent proportions given as (value, low, high), with Newcombe's
    (1998, method 10) square-and-add interval built from each one's own interval. It works for
    Wilson and for stratified intervals alike, and is better than asking whether two intervals
    overlap (which misses real differences)."""
    (pa, la, ha), (pb, lb, hb) = a, b
    diff = pa - pb
    low = diff - math.sqrt((pa - la) ** 2 + (hb - pb) ** 2)
    high = diff + math.sqrt((ha - pa) ** 2 + (pb - lb) ** 2)
    return diff, max(-1.0, low), min(1.0, high)
