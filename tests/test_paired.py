"""Paired statistics (harness.analysis.paired) against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.paired import (
    discordant,
    is_binary,
    mcnemar_exact,
    paired_difference,
    percentile_interval,
    resampled_means,
)


def pair(both_right: int, only_x: int, only_y: int, both_wrong: int) -> tuple[np.ndarray, ...]:
    x = [1] * both_right + [1] * only_x + [0] * only_y + [0] * both_wrong
    y = [1] * both_right + [0] * only_x + [1] * only_y + [0] * both_wrong
    return np.array(x, dtype=float), np.array(y, dtype=float)


def test_mcnemar_exact_is_the_two_sided_binomial_test_of_the_discordant_items():
    # 1 against 9 discordant: 2 * P(X <= 1 | n = 10, p = 1/2) = 2 * 11 / 1024
    assert mcnemar_exact(*pair(20, 1, 9, 10)) == pytest.approx(22 / 1024)
    # 0 against 6: 2 / 64; the concordant items do not matter
    assert mcnemar_exact(*pair(0, 0, 6, 0)) == pytest.approx(2 / 64)
    assert mcnemar_exact(*pair(50, 0, 6, 50)) == pytest.approx(2 / 64)
    # 3 against 3, or nothing discordant: nothing tells them apart
    assert mcnemar_exact(*pair(5, 3, 3, 5)) == 1.0
    assert mcnemar_exact(*pair(5, 0, 0, 5)) == 1.0


def test_discordant_counts_leave_out_items_unscored_in_either():
    x = np.array([1, 1, 0, np.nan, 1])
    y = np.array([0, 1, 1, 1, np.nan])
    assert discordant(x, y) == (1, 1)


def test_scores_are_binary_in_any_unit_scale_and_not_when_fractional():
    assert is_binary(np.array([0.0, 1.0, np.nan]))
    assert is_binary(np.array([0.0, 100.0, 100.0]))
    assert not is_binary(np.array([0.0, 0.5, 1.0]))
    assert not is_binary(np.array([7.5, 9.0]))  # a rating scale


def test_paired_difference_counts_wins_losses_and_tests_binary_scores():
    x, y = pair(20, 1, 9, 10)
    d = paired_difference(x, y, draws=500, seed=1)
    assert d.difference == pytest.approx(-8 / 40)
    assert (d.items, d.wins, d.losses) == (40, 1, 9)
    assert d.p_mcnemar == pytest.approx(22 / 1024)
    assert d.ci[0] < d.difference < d.ci[1] < 0  # significantly worse, as McNemar says


def test_paired_interval_is_narrower_than_the_unpaired_one_on_agreeing_configurations():
    # 40 items, y right on 3 more items than x and the same on all others
    x, y = pair(17, 0, 3, 20)
    d = paired_difference(y, x, draws=2000, seed=0)
    assert d.difference == pytest.approx(3 / 40)
    assert d.ci[0] > 0  # paired: the 3 items are all one way
    rng = np.random.default_rng(0)  # unpaired: each configuration resampled on its own
    unpaired = [
        y[rng.integers(0, 40, 40)].mean() - x[rng.integers(0, 40, 40)].mean() for _ in range(2000)
    ]
    lo, hi = percentile_interval(np.array(unpaired))
    assert lo < 0 < hi
    assert hi - lo > 2 * (d.ci[1] - d.ci[0])


def test_a_constant_difference_has_a_point_interval_and_fractional_scores_no_mcnemar():
    x = np.array([0.2, 0.5, 0.9, 0.4])
    d = paired_difference(x, x - 0.1, draws=200)
    assert d.difference == pytest.approx(0.1)
    assert d.ci == pytest.approx((0.1, 0.1))
    assert d.p_mcnemar is None


def test_paired_difference_refuses_different_items_and_handles_no_common_item():
    with pytest.raises(ValueError, match="same items"):
        paired_difference(np.zeros(3), np.zeros(4))
    d = paired_difference(np.array([np.nan, 1.0]), np.array([0.0, np.nan]))
    assert d.items == 0 and d.difference != d.difference


def test_resampled_means_share_each_draw_across_configurations():
    rng = np.random.default_rng(3)
    base = rng.random(30)
    other = rng.random(25)
    means = resampled_means(
        {"a": np.stack([base, base + 1.0]), "b": np.stack([other, other * 2])}, draws=300, seed=0
    )
    assert means["a"].shape == (300, 2) and means["b"].shape == (300, 2)
    assert np.allclose(means["a"][:, 1] - means["a"][:, 0], 1.0)  # the same items in each draw
    assert np.allclose(means["b"][:, 1], 2 * means["b"][:, 0])
    lo, hi = percentile_interval(means["a"][:, 0])
    assert lo < base.mean() < hi
    again = resampled_means({"a": np.stack([base, base + 1.0])}, draws=300, seed=0)
    assert np.array_equal(again["a"], means["a"])  # seeded


def test_resampled_means_leave_out_unscored_items():
    scores = np.array([[1.0, np.nan, 0.0, 1.0]])
    means = resampled_means({"a": scores}, draws=200, seed=0)["a"][:, 0]
    finite = means[~np.isnan(means)]
    assert len(finite) > 150 and ((finite >= 0) & (finite <= 1)).all()
