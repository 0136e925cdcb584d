"""Paired bootstrap: intervals cover, identical runs are 'no difference', real gains are found."""

from __future__ import annotations

import numpy as np
import pytest

from nova_mlflow.analysis.bootstrap import mean_ci, paired_difference, resample_indices


def test_identical_runs_have_p_one_and_zero_delta():
    x = np.random.default_rng(1).integers(0, 2, 200)
    d = paired_difference(x, x, resample_indices(200))
    assert d.delta == 0 and d.p_value == 1.0 and d.low == d.high == 0


def test_clear_gain_is_significant_and_noise_is_not():
    rng = np.random.default_rng(2)
    a = rng.random(300) < 0.30
    b = a | (rng.random(300) < 0.25)  # b solves everything a solves, and more
    idx = resample_indices(300)
    d = paired_difference(a, b, idx)
    assert d.delta > 0.1 and d.low > 0 and d.p_value < 0.01
    c = a.copy()
    flip = rng.choice(300, 4, replace=False)
    c[flip] = ~c[flip]  # a handful of cases changed both ways
    assert paired_difference(a, c, idx).p_value > 0.05


def test_interval_contains_the_mean_and_is_reproducible():
    x = np.random.default_rng(3).random(100)
    idx = resample_indices(100, seed=7)
    ci = mean_ci(x, idx)
    assert ci.low < ci.value < ci.high
    assert mean_ci(x, resample_indices(100, seed=7)) == ci
    # a 95% interval of the mean of 100 uniforms is about +-0.057 wide
    assert 0.08 < ci.high - ci.low < 0.15


def test_sizes_must_match():
    with pytest.raises(ValueError):
        paired_difference([1, 0], [1, 0, 1], resample_indices(2))
