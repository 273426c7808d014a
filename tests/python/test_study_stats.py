"""Checks the statistics of coupling.study (scripts/study.py) against brute force and hand-worked examples.

Usage: pytest tests/python/test_study_stats.py, or test_study_stats.py (tests/cli/study.sh runs it;
numpy, scipy and h5py only)
  - holm, benjamini_hochberg: a hand-worked example (p = 0.01, 0.04, 0.03, 0.005), R's p.adjust example
    (0.01..0.05), and on random p-value vectors (ties and NaN included) the brute-force procedures: at
    every level alpha < 1 between the adjusted values, hypothesis j is rejected by Holm's step-down (or BH's
    step-up) procedure exactly when its adjusted p <= alpha;
  - partial_correlation: equals the textbook formula from the three pairwise correlations, and its p
    equals that of the t test of x's coefficient in the least-squares fit y ~ 1 + z + x (n - 3 df);
    NaN for n < 4, constant z, or x a linear function of z;
  - noise_floor and series_predictors on small hand-worked inputs.
"""
import math

import numpy as np
from scipy import stats

import coupling_path  # noqa: F401  (python/ on sys.path)
from coupling.study import benjamini_hochberg, holm, noise_floor, partial_correlation, series_predictors


def brute_holm(p, alpha):
    """Holm's step-down procedure at level alpha: the rejected hypotheses (NaN: never tested)."""
    tested = [i for i in range(len(p)) if math.isfinite(p[i])]
    order = sorted(tested, key=lambda i: p[i])
    m, rejected = len(order), set()
    for rank, i in enumerate(order):
        if p[i] <= alpha / (m - rank):
            rejected.add(i)
        else:
            break
    return rejected


def brute_bh(p, alpha):
    """Benjamini-Hochberg's step-up procedure at level alpha: reject the k smallest, k the largest
    rank with p_(k) <= k alpha / m."""
    tested = [i for i in range(len(p)) if math.isfinite(p[i])]
    order = sorted(tested, key=lambda i: p[i])
    m = len(order)
    k = max([rank + 1 for rank, i in enumerate(order) if p[i] <= (rank + 1) * alpha / m], default=0)
    return set(order[:k])


def check_against_brute_force(rng, trials=300):
    for _ in range(trials):
        m = int(rng.integers(1, 12))
        p = rng.uniform(0, 0.3, m) ** rng.choice([1, 2])
        if m > 2 and rng.random() < 0.5:
            p[1] = p[0]  # a tie
        if m > 3 and rng.random() < 0.3:
            p[2] = np.nan  # an undefined test: not counted
        for adjust, brute in ((holm, brute_holm), (benjamini_hochberg, brute_bh)):
            adjusted = adjust(p)
            assert np.isnan(adjusted[np.isnan(p)]).all()
            finite = np.sort(np.unique(adjusted[np.isfinite(adjusted)]))
            levels = np.concatenate([[finite[0] / 2], (finite[1:] + finite[:-1]) / 2, [(finite[-1] + 1) / 2]])
            levels = levels[levels < 1]  # an adjusted p of 1 means: not rejected at any level below 1
            for alpha in levels:
                expected = brute(list(p), alpha)
                got = {i for i in range(m) if np.isfinite(adjusted[i]) and adjusted[i] <= alpha}
                assert got == expected, (adjust.__name__, p, alpha, got, expected)
            assert (adjusted[np.isfinite(p)] >= p[np.isfinite(p)] - 1e-15).all() and (adjusted[np.isfinite(p)] <= 1).all()


def main():
    # Hand-worked: sorted 0.005, 0.01, 0.03, 0.04. Holm: 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, 2 x 0.03 = 0.06,
    # 1 x 0.04 = 0.04 -> running maximum 0.06. BH: 0.02, 0.02, 0.04, 0.04 (running minimum from the top).
    p = [0.01, 0.04, 0.03, 0.005]
    assert np.allclose(holm(p), [0.03, 0.06, 0.06, 0.02]), holm(p)
    assert np.allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02]), benjamini_hochberg(p)
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm") and "BH".
    p = [0.01, 0.02, 0.03, 0.04, 0.05]
    assert np.allclose(holm(p), [0.05, 0.08, 0.09, 0.09, 0.09]), holm(p)
    assert np.allclose(benjamini_hochberg(p), [0.05] * 5), benjamini_hochberg(p)
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0]) and np.allclose(benjamini_hochberg([0.5, 0.9]), [0.9, 0.9])
    check_against_brute_force(np.random.default_rng(7))
    print("ok   Holm and Benjamini-Hochberg: worked examples and brute force on 300 random p vectors")

    rng = np.random.default_rng(3)
    for n in (5, 9, 30):
        z = rng.normal(size=n)
        x = z + rng.normal(size=n)
        y = 0.5 * x - z + rng.normal(size=n)
        r, p = partial_correlation(x, y, z)
        rxy, rxz, ryz = np.corrcoef(x, y)[0, 1], np.corrcoef(x, z)[0, 1], np.corrcoef(y, z)[0, 1]
        textbook = (rxy - rxz * ryz) / math.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))
        assert abs(r - textbook) < 1e-12, (r, textbook)
        design = np.column_stack([np.ones(n), z, x])
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = y - design @ beta
        sigma2 = residual @ residual / (n - 3)
        se = math.sqrt(sigma2 * np.linalg.inv(design.T @ design)[2, 2])
        p_ols = 2 * stats.t.sf(abs(beta[2] / se), n - 3)
        assert abs(p - p_ols) < 1e-10 * max(1.0, p_ols), (p, p_ols)
    assert all(math.isnan(v) for v in partial_correlation([1, 2, 3], [3, 1, 2], [1, 2, 4]))  # n < 4
    assert all(math.isnan(v) for v in partial_correlation([1, 2, 3, 4], [3, 1, 2, 5], [1, 1, 1, 1]))
    assert all(math.isnan(v) for v in partial_correlation([2, 4, 6, 8.5], [3, 1, 2, 5], [1, 2, 3, 4.25]))
    print("ok   partial correlation: the pairwise formula, the OLS t test with n - 3 df, undefined cases")

    seed_sd, family_sd = noise_floor([1.0, 3.0, 10.0, 14.0, 7.0, np.nan], [0, 0, 1, 1, 2, 2])
    assert abs(seed_sd - (math.sqrt(2) + math.sqrt(8)) / 2) < 1e-12, seed_sd  # configs 0 and 1; 2 has one value
    assert abs(family_sd - np.std([1, 3, 10, 14, 7], ddof=1)) < 1e-12
    assert math.isnan(noise_floor([1.0, 2.0, 3.0], [0, 1, 2])[0])
    step = [0, 1, 2, 5, 10]
    out = series_predictors(step, [1.0, 0.9, 0.5, 0.7, 0.8], 10)
    assert out["final"] == 0.8 and out["peak"] == 0.5 and out["peak_step"] == 2, out
    assert abs(out["at10"] - 0.9) < 1e-12 and abs(out["at50"] - 0.7) < 1e-12, out
    auc = (0.1 * (1.0 + 0.9) + 0.1 * (0.9 + 0.5) + 0.3 * (0.5 + 0.7) + 0.5 * (0.7 + 0.8)) / 2
    assert abs(out["auc"] - auc) < 1e-12, (out["auc"], auc)
    up = series_predictors(step, [0.1, 0.3, 0.2, 0.6, 0.4], 10, maximise=True)
    assert up["peak"] == 0.6 and up["peak_step"] == 5 and abs(series_predictors(step, [2.0] * 5, 10)["auc"] - 2) < 1e-12
    gap = series_predictors(step, [np.nan, 0.9, 0.5, 0.7, 0.8], 10)
    assert math.isnan(gap["auc"]) and gap["peak"] == 0.5 and gap["final"] == 0.8, gap  # auc needs step 0
    assert all(math.isnan(v) for v in series_predictors(step, [np.nan] * 5, 10).values())
    print("ok   noise floor and the time-series predictors (final, peak, peak step, at 10%/50%, AUC)")


def test_study_statistics():
    main()


if __name__ == "__main__":
    main()
