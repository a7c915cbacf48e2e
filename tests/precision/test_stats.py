"""The statistics against published examples and values worked out by hand."""

from __future__ import annotations

import math
import random

import pytest

from review.precision import stats
from review.precision.stats import Part, stratified_jeffreys

Z = 1.959963984540054


def closed_form_wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927), written out independently of review.precision.stats."""
    p = k / n
    denominator = 1 + Z**2 / n
    centre = p + Z**2 / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return (centre - spread) / denominator, (centre + spread) / denominator


def test_the_wilson_interval_of_127_of_130_matches_the_closed_form_and_the_textbook():
    got = stats.wilson(127, 130)
    low, high = closed_form_wilson(127, 130)
    assert got.value == pytest.approx(127 / 130)
    assert got.low == pytest.approx(low, abs=1e-12)
    assert got.high == pytest.approx(high, abs=1e-12)
    # The figure usually quoted for 127/130 is about [0.9344, 0.9923]; the closed form gives
    # [0.93435, 0.99212], so the quoted one agrees to the fourth decimal within rounding.
    assert got.low == pytest.approx(0.9344, abs=1e-4)
    assert got.high == pytest.approx(0.9923, abs=3e-4)


def test_the_wilson_interval_stays_inside_zero_and_one_at_the_extremes():
    all_valid, none_valid = stats.wilson(20, 20), stats.wilson(0, 20)
    assert all_valid.high == 1.0 and all_valid.low == pytest.approx(20 / (20 + Z**2))
    assert none_valid.low == 0.0 and none_valid.high == pytest.approx(Z**2 / (20 + Z**2))


def test_a_share_of_nothing_has_no_value_and_no_interval():
    empty = stats.wilson(0, 0)
    assert (empty.value, empty.low, empty.high) == (None, None, None)


def test_fleiss_kappa_of_the_textbook_table_is_0_210():
    # Fleiss (1971) as worked in Wikipedia's "Fleiss' kappa" article: 10 subjects, 14 raters,
    # 5 categories; P-bar = 0.378, P-bar_e = 0.213, kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    got = stats.fleiss_kappa(table)
    assert round(got.value, 3) == 0.210
    assert round(got.observed, 3) == 0.378
    assert round(got.expected, 3) == 0.213
    assert got.n == 10
    assert got.low < got.value < got.high


def naive_fleiss(rows: list[list[int]]) -> float | None:
    """Fleiss' kappa by the textbook formula, for rows with one number of raters."""
    n, raters = len(rows), sum(rows[0])
    p_bar = sum(sum(c * (c - 1) for c in r) / (raters * (raters - 1)) for r in rows) / n
    shares = [sum(col) / (n * raters) for col in zip(*rows, strict=True)]
    p_e = sum(p * p for p in shares)
    return None if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def test_the_fleiss_interval_agrees_with_a_plain_bootstrap_over_items():
    rng = random.Random(5)
    table = [[k := rng.choice([0, 0, 1, 3, 3, 3]), 3 - k] for _ in range(60)]
    draws = sorted(
        value
        for _ in range(4000)
        if (value := naive_fleiss([rng.choice(table) for _ in table])) is not None
    )
    got = stats.fleiss_kappa(table)
    assert got.value == pytest.approx(naive_fleiss(table))
    assert got.low == pytest.approx(draws[int(0.025 * len(draws))], abs=0.03)
    assert got.high == pytest.approx(draws[int(0.975 * len(draws))], abs=0.03)


def test_the_fleiss_bootstrap_interval_is_the_same_every_time():
    table = [[3, 0], [2, 1], [0, 3], [3, 0], [1, 2], [3, 0], [0, 3], [2, 1]]
    assert stats.fleiss_kappa(table) == stats.fleiss_kappa(table)


def test_fleiss_kappa_is_undefined_when_everyone_always_says_the_same():
    assert stats.fleiss_kappa([[3, 0], [3, 0]]).value is None


def test_fleiss_kappa_refuses_an_item_with_one_rating():
    with pytest.raises(ValueError, match="at least two ratings"):
        stats.fleiss_kappa([[1, 0], [2, 0]])


def test_cohen_kappa_of_the_textbook_two_by_two_table():
    # Wikipedia's "Cohen's kappa" example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10,
    # no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    got = stats.cohen_kappa(pairs)
    assert got.value == pytest.approx(0.4)
    assert got.observed == pytest.approx(0.7) and got.expected == pytest.approx(0.5)
    se = math.sqrt(0.7 * 0.3 / (50 * 0.5**2))  # Cohen (1960): 0.1296
    assert got.low == pytest.approx(0.4 - Z * se) and got.high == pytest.approx(0.4 + Z * se)
    assert round(got.low, 3) == 0.146 and round(got.high, 3) == 0.654


def test_cohen_kappa_of_perfect_agreement_is_one():
    got = stats.cohen_kappa([(True, True), (False, False), (True, True)])
    assert got.value == pytest.approx(1.0)


def test_ece_of_a_small_constructed_case():
    # Bin 0.1-0.2: confidence 0.15, 1 of 2 valid -> gap 0.35, weight 2/6.
    # Bin 0.8-0.9: confidence 0.85, 3 of 4 valid -> gap 0.10, weight 4/6.
    pairs = [(0.15, False), (0.15, True), (0.85, True), (0.85, True), (0.85, True), (0.85, False)]
    bins = stats.reliability_bins(pairs, bins=10)
    assert [b.n for b in bins] == [0, 2, 0, 0, 0, 0, 0, 0, 4, 0]
    assert bins[8].accuracy == pytest.approx(0.75)
    assert stats.expected_calibration_error(bins) == pytest.approx(2 / 6 * 0.35 + 4 / 6 * 0.10)


def test_a_confidence_of_one_falls_in_the_last_bin():
    bins = stats.reliability_bins([(1.0, True), (0.0, False)], bins=4)
    assert bins[-1].n == 1 and bins[0].n == 1


def test_ece_of_nothing_is_none():
    assert stats.expected_calibration_error(stats.reliability_bins([], bins=5)) is None


def test_the_stratified_estimate_weights_each_stratum_by_its_size():
    # 60 high-confidence items whose sample is all valid, 40 low ones with 8 of 10 valid:
    # the pool's precision is 0.6 * 1 + 0.4 * 0.8 = 0.92, not the naive 18/20 = 0.90.
    strata = [stats.Stratum(size=40, k=8, n=10), stats.Stratum(size=60, k=10, n=10)]
    got = stats.stratified_proportion(strata)
    assert got.value == pytest.approx(0.92)
    assert got.variance == pytest.approx(0.4**2 * 0.8 * 0.2 / 10)
    assert got.effective_n == pytest.approx(0.92 * 0.08 / got.variance)
    assert got.n == 20
    assert got.low < 0.92 < got.high


def test_the_stratified_estimate_equals_the_truth_when_every_stratum_is_fully_sampled():
    strata = [stats.Stratum(size=5, k=3, n=5), stats.Stratum(size=15, k=15, n=15)]
    assert stats.stratified_proportion(strata).value == pytest.approx(18 / 20)


def test_the_stratified_interval_covers_the_true_precision_about_95_percent_of_the_time():
    rng = random.Random(7)
    sizes, truth = [400, 300, 300], [0.80, 0.95, 0.99]
    true_precision = sum(s * p for s, p in zip(sizes, truth, strict=True)) / sum(sizes)
    covered = 0
    for _ in range(400):
        strata = []
        for size, p in zip(sizes, truth, strict=True):
            k = sum(rng.random() < p for _ in range(40))
            strata.append(stats.Stratum(size=size, k=k, n=40))
        got = stats.stratified_proportion(strata)
        covered += got.low <= true_precision <= got.high
    assert 0.91 <= covered / 400 <= 0.99


def test_a_stratum_without_a_sample_joins_its_neighbour():
    strata = [stats.Stratum(10, 0, 0), stats.Stratum(30, 9, 10), stats.Stratum(5, 0, 0)]
    assert stats.collapse_empty_strata(strata) == [stats.Stratum(45, 9, 10)]


def test_a_pool_without_any_sample_has_no_estimate():
    assert stats.stratified_proportion([stats.Stratum(10, 0, 0)]).value is None


def test_verified_items_shift_the_pool_interval_linearly():
    pool = stats.StratifiedEstimate(0.9, 0.8, 0.95, 20, 0.001, 90.0)
    got = stats.with_verified(verified=30, estimated=10, pool=pool)
    assert got["value"] == pytest.approx(0.75 + 0.25 * 0.9)
    assert got["low"] == pytest.approx(0.75 + 0.25 * 0.8)
    assert got["high"] == pytest.approx(0.75 + 0.25 * 0.95)


def test_the_recommended_threshold_is_the_lowest_whose_lower_bound_meets_the_target():
    # 150 rated at 0.9 all valid; 50 at 0.7 with 45 valid; 30 at 0.5 all invalid.
    pairs = [(0.9, True)] * 150 + [(0.7, True)] * 45 + [(0.7, False)] * 5 + [(0.5, False)] * 30
    low_at_09, _ = closed_form_wilson(150, 150)
    low_at_07, _ = closed_form_wilson(195, 200)
    assert low_at_09 >= 0.97 > low_at_07 >= 0.9  # the case is built so the answer is known
    strict = stats.recommend_threshold(pairs, target=0.97)
    assert strict.threshold == 0.9 and strict.n == 150
    assert strict.low == pytest.approx(low_at_09)
    looser = stats.recommend_threshold(pairs, target=0.9)
    assert looser.threshold == 0.7 and (looser.k, looser.n) == (195, 200)


def test_no_threshold_is_recommended_when_no_rated_set_is_good_enough():
    assert stats.recommend_threshold([(0.9, True)] * 20, target=0.97) is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10.
        ((56, 70), (48, 80), (0.0524, 0.3339)),
        ((9, 10), (3, 10), (0.1705, 0.8090)),
    ],
)
def test_the_difference_of_two_runs_has_newcombes_published_interval(a, b, expected):
    wa, wb = stats.wilson(*a), stats.wilson(*b)
    diff, low, high = stats.difference((wa.value, wa.low, wa.high), (wb.value, wb.low, wb.high))
    assert diff == pytest.approx(a[0] / a[1] - b[0] / b[1])
    assert (round(low, 4), round(high, 4)) == expected


# -- the exported set's stratified estimate ------------------------------------------------------


def test_one_all_valid_stratum_gives_the_jeffreys_interval_never_a_point():
    value, low, high = stratified_jeffreys([Part(weight=1.0, k=12, n=12)])
    # The exact Jeffreys bound, Beta(12.5, 0.5)'s 2.5th percentile, is 0.8147.
    assert value == high == 1.0 and low == pytest.approx(0.8147, abs=0.006)


def test_a_small_stratum_widens_the_interval_in_proportion_to_its_weight():
    big = stratified_jeffreys([Part(1.0, 200, 200)])
    mixed = stratified_jeffreys([Part(0.5, 200, 200), Part(0.5, 5, 5)])
    slight = stratified_jeffreys([Part(0.95, 200, 200), Part(0.05, 5, 5)])
    assert mixed[1] < slight[1] < big[1] < 1.0
    assert mixed[0] == slight[0] == big[0] == 1.0


def test_the_exported_set_estimate_weights_each_stratum_by_its_size():
    value, low, high = stratified_jeffreys([Part(3.0, 8, 10), Part(1.0, 40, 40)])
    assert value == pytest.approx(0.75 * 0.8 + 0.25 * 1.0)
    assert low < value < high < 1.0


def test_a_stratum_with_members_and_no_sample_cannot_be_estimated():
    assert stratified_jeffreys([Part(0.5, 10, 10), Part(0.5, 0, 0)]) is None
    assert stratified_jeffreys([Part(1.0, 10, 10), Part(0.0, 0, 0)]) is not None
    assert stratified_jeffreys([]) is None


def test_the_monte_carlo_bounds_are_the_same_every_time():
    parts = [Part(0.6, 17, 20), Part(0.4, 30, 31)]
    assert stratified_jeffreys(parts) == stratified_jeffreys(parts)
