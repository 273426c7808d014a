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
  - seed_anova against scipy's one-way ANOVA and the ICC(1) formula; within_configuration against the OLS t
    test of x in y ~ x + configuration dummies; series_predictors on small hand-worked inputs.
"""
import math

import numpy as np
from scipy import stats

import coupling_path  # noqa: F401  (python/ on sys.path)
from coupling.study import (benjamini_hochberg, holm, partial_correlation, seed_anova, series_predictors,
                            within_configuration)


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

    # One-way ANOVA over configurations (config 2 has one finite value: left out), unequal group sizes.
    x, configs = [1.0, 3.0, 2.5, 10.0, 14.0, 7.0, np.nan], [0, 0, 0, 1, 1, 2, 2]
    icc, f, p = seed_anova(x, configs)
    reference = stats.f_oneway([1.0, 3.0, 2.5], [10.0, 14.0])
    assert abs(f - reference.statistic) < 1e-9 * reference.statistic and abs(p - reference.pvalue) < 1e-12, (f, p)
    groups = [np.array([1.0, 3.0, 2.5]), np.array([10.0, 14.0])]
    grand = np.concatenate(groups).mean()
    msb = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / 1
    msw = sum(((g - g.mean()) ** 2).sum() for g in groups) / 3
    n0 = (5 - (9 + 4) / 5) / 1
    assert abs(icc - (msb - msw) / (msb + (n0 - 1) * msw)) < 1e-12, icc
    balanced = seed_anova([1.0, 1.0, 5.0, 5.0], [0, 0, 1, 1])  # no within-configuration variance: undefined
    assert all(math.isnan(v) for v in balanced)
    assert all(math.isnan(v) for v in seed_anova([1.0, 2.0, 3.0], [0, 1, 2]))  # no configuration with 2 seeds
    # Seed-level (within-configuration) r: the t test of x in y ~ x + configuration dummies.
    rng = np.random.default_rng(3)
    configs = np.repeat(np.arange(4), 3)
    x = rng.normal(size=12) + configs
    y = 0.7 * x - 2.0 * configs + rng.normal(size=12)
    r, p, n = within_configuration(x, y, configs)
    design = np.column_stack([x, (configs[:, None] == np.arange(4)).astype(float)])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    df = 12 - 5
    se = math.sqrt(residual @ residual / df * np.linalg.inv(design.T @ design)[0, 0])
    assert n == 12 and abs(p - 2 * stats.t.sf(abs(beta[0] / se), df)) < 1e-10, (p, n)
    assert r > 0 and all(math.isnan(v) for v in within_configuration([1.0, 2.0], [2.0, 1.0], [0, 1])[:2])
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
    print("ok   seed ANOVA and ICC, the within-configuration r, and the time-series predictors (final, peak, peak "
          "step, at 10%/50%, AUC)")


def test_study_statistics():
    main()


if __name__ == "__main__":
    main()
