"""pytest for coupling.intervals (the paired probe bootstrap) and coupling.log.differ.

The vectorised numpy draw equals a loop over the specification with Python integers (docs/metrics.md);
the resamples and one interval are pinned to the literals tests/engine/test_probe_bootstrap.cpp pins for
the C++ engine, so both languages give the same intervals; analytic cases: two probes, constant values, a
constant shift between two steps (the paired interval is the shift), NaN and a single probe.
"""
import os

import numpy as np
import pytest

from coupling import intervals

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "hf-bf16-log", "coupling.h5")  # 2 probes, step 0
TRAINING = os.path.join(HERE, "..", "fixtures", "schema-1-log", "run", "coupling.h5")  # 2 probes, steps 0, 2, 4
MASK = (1 << 64) - 1


def loop_interval(values, level=0.95, resamples=intervals.RESAMPLES, seed=intervals.SEED):
    """The specification, one value at a time, with Python integers."""
    probes, means, k = len(values), [], 0
    for _ in range(resamples):
        total = 0.0
        for _ in range(probes):
            k += 1
            z = (seed + k * 0x9E3779B97F4A7C15) & MASK
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            total += values[(z ^ (z >> 31)) % probes]
        means.append(total / probes)
    means.sort()

    def quantile(q):
        h = (resamples - 1) * q
        below = int(np.floor(h))
        above = min(below + 1, resamples - 1)
        return means[below] + (h - below) * (means[above] - means[below])

    tail = (1 - level) / 2
    return sum(values) / probes, quantile(tail), quantile(1 - tail)


def test_pinned_resamples_and_interval():
    # The same literals as tests/engine/test_probe_bootstrap.cpp.
    assert intervals.resample_indices(7, 2).tolist() == [[6, 1, 1, 2, 2, 0, 0], [1, 4, 6, 1, 3, 6, 1]]
    np.testing.assert_allclose(intervals.probe_intervals([0.1, 0.5, 0.3, 0.9, 0.2]), (0.4, 0.18, 0.68),
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("probes,level", [(2, 0.95), (5, 0.95), (16, 0.9)])
def test_equals_the_specification(probes, level):
    values = np.random.default_rng(probes).normal(size=probes).tolist()
    got = intervals.probe_intervals(values, level, resamples=300)
    # numpy sums the resamples pairwise, the loop in order: a few ulp of the values
    np.testing.assert_allclose(got, loop_interval(values, level, resamples=300), rtol=0, atol=1e-13)


def test_vectorises_over_leading_axes():
    values = np.random.default_rng(3).normal(size=(4, 3, 6))
    mean, low, high = intervals.probe_intervals(values)
    assert mean.shape == low.shape == high.shape == (4, 3)
    np.testing.assert_allclose(low[2, 1], intervals.probe_intervals(values[2, 1])[1], rtol=0, atol=0)


def test_analytic_cases():
    # resample means of {0, 1}: 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and 97.5% quantiles
    # are the ends unless fewer than 50 of 2000 draws fall there
    assert intervals.probe_intervals([0.0, 1.0]) == (0.5, 0.0, 1.0)
    assert intervals.probe_intervals([0.25] * 4) == (0.25, 0.25, 0.25)
    before = np.array([0.1, 0.9, 0.4, 0.7, 0.2, 0.6])
    _, low, high = intervals.probe_intervals(before)
    assert low < before.mean() + 0.125 < high  # separate intervals overlap ...
    change = intervals.difference(before, before + 0.125)
    np.testing.assert_allclose(change, (0.125, 0.125, 0.125), rtol=0, atol=1e-15)  # ... the paired one does not


def test_nan_and_single_probe():
    assert all(np.isnan(intervals.probe_intervals([0.5, np.nan, 0.25])))
    mean, low, high = intervals.probe_intervals([0.5])
    assert mean == 0.5 and np.isnan(low) and np.isnan(high)
    with pytest.raises(ValueError):
        intervals.difference([0.5, 0.25], [0.5])
    with pytest.raises(ValueError):
        intervals.probe_intervals([0.5, 0.25], level=1.0)


def test_differ_on_a_log():
    pytest.importorskip("xarray")
    pytest.importorskip("pandas")
    from coupling.log import LogError, differ

    result = differ(FIXTURE, 0, 0)
    assert result["column"] == "m_offdiag_k4_ujv_norm" and result["probes"] == 2
    assert result["change"] == (0.0, 0.0, 0.0) and not result["differ"]
    assert result["a"][1] < result["a"][0] < result["a"][2]
    with pytest.raises(LogError, match="step 5 is not in the log: it holds steps 0"):
        differ(FIXTURE, 0, 5)
    with pytest.raises(LogError, match="no column m_offdiag_k10_ujv_norm"):
        differ(FIXTURE, 0, 0, column="m_offdiag_k10_ujv_norm")


def test_differ_between_two_steps():
    """The change between two steps of a training log, against the per-probe values read with h5py."""
    pytest.importorskip("xarray")
    pytest.importorskip("pandas")
    import h5py
    from coupling.log import differ

    with h5py.File(TRAINING, "r") as f:
        m = f["measurement"]
        k = int(m["k"][0])
        per_probe = m["depth_mean_adjacent"][:, :, :, 0, 0, 0].mean(axis=2)  # [step, probe]: ujv, norm, first K
    result = differ(TRAINING, 0, 4, column=f"m_adjacent_k{k}_ujv_norm")
    np.testing.assert_allclose(result["change"], intervals.difference(per_probe[0], per_probe[2]), rtol=0, atol=1e-15)
    np.testing.assert_allclose(result["a"], intervals.probe_intervals(per_probe[0]), rtol=0, atol=1e-15)
    assert result["change"][0] == pytest.approx(per_probe[2].mean() - per_probe[0].mean(), abs=1e-15)
    assert result["differ"] == (result["change"][1] > 0 or result["change"][2] < 0)


def test_bounded_memory_chunks_agree():
    """Many rows go through in chunks: the same bounds as row by row (to the summation order)."""
    values = np.random.default_rng(5).normal(size=(300, 9))
    saved = intervals._CHUNK_ELEMENTS
    try:
        intervals._CHUNK_ELEMENTS = 7 * 2000 * 9  # 7 rows a chunk, the last one short
        chunked = intervals.probe_intervals(values)
    finally:
        intervals._CHUNK_ELEMENTS = saved
    single = [intervals.probe_intervals(row) for row in values[:20]]
    np.testing.assert_allclose(np.array(chunked)[:, :20], np.array(single).T, rtol=0, atol=1e-15)  # summation order
