"""95% intervals of probe means that tell steps apart: a percentile bootstrap over probes, paired across steps.

The resamples depend only on the probe count and a seed, never on the values, so every step of a log resamples
the same probes: the interval of a change between two steps is that of the per-probe changes (paired), far
narrower than two separate intervals suggest when the probes differ more from each other than the steps do.
The C++ engine draws the same resamples (coupling/engine/probe_bootstrap.h; docs/metrics.md pins both):
  - resample b, position i takes probe  splitmix64(seed, b * P + i + 1) mod P  (SplitMix64's k-th output of
    the stream started at `seed`, k counting from 1);
  - a resample's mean is the mean of its P values; the interval is the (1 - level) / 2 and 1 - (1 - level) / 2
    quantiles of the resample means, linearly interpolated (numpy.quantile's default);
  - a NaN value makes the mean and interval NaN; fewer than two probes give no interval (NaN bounds).

    from coupling.intervals import probe_intervals, difference
    mean, low, high = probe_intervals(per_probe)            # per_probe [..., P] -> three arrays [...]
    change, low, high = difference(per_probe_a, per_probe_b)  # b - a, probe by probe

What a percentile bootstrap over P probes can and cannot say: it treats the probes as a sample of the
inputs one cares about; with few probes (P < 10) its intervals are too narrow (the resamples cannot show the
spread they have not seen), so measure more probes when two steps are close.
"""
import numpy as np

RESAMPLES = 2000
SEED = 2407078102  # the paper's arXiv number
LEVEL = 0.95
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_CHUNK_ELEMENTS = 1 << 22  # float64 resample values held at once (32 MiB)


def splitmix64(seed, count):
    """The first `count` outputs of SplitMix64 started at `seed` (uint64; wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, count + 1, dtype=np.uint64) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def resample_indices(probes, resamples=RESAMPLES, seed=SEED):
    """[resamples, probes] probe indices: row b is resample b."""
    if probes < 1 or resamples < 1:
        raise ValueError(f"a probe bootstrap needs at least one probe and one resample (got {probes}, {resamples})")
    return (splitmix64(seed, probes * resamples) % np.uint64(probes)).astype(np.int64).reshape(resamples, probes)


def probe_intervals(per_probe, level=LEVEL, resamples=RESAMPLES, seed=SEED):
    """(mean, low, high) over the last axis (probes) of `per_probe`, each of the leading shape."""
    if not 0 < level < 1:
        raise ValueError(f"an interval's level must lie in (0, 1) (got {level})")
    values = np.asarray(per_probe, dtype=np.float64)
    probes = values.shape[-1]
    mean = values.mean(axis=-1)
    mean = np.where(np.isfinite(mean), mean, np.nan)
    if probes < 2:
        nan = np.full(mean.shape, np.nan)
        return mean, nan, nan.copy()
    indices = resample_indices(probes, resamples, seed)
    tail = (1 - level) / 2
    rows = values.reshape(-1, probes)
    bounds = np.empty((2, len(rows)))
    chunk = max(1, _CHUNK_ELEMENTS // (resamples * probes))  # rows at a time: bounded memory for long logs
    for start in range(0, len(rows), chunk):
        means = rows[start:start + chunk][:, indices].mean(axis=-1)  # [rows, resamples]
        bounds[:, start:start + chunk] = np.quantile(means, [tail, 1 - tail], axis=-1)
    low, high = bounds.reshape((2,) + mean.shape)
    bad = ~np.isfinite(mean)
    return mean, np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def difference(before, after, level=LEVEL, resamples=RESAMPLES, seed=SEED):
    """(mean change, low, high) of after - before, probe by probe (the same probes at both steps)."""
    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if before.shape != after.shape:
        raise ValueError(f"a paired difference needs the same probes at both steps ({before.shape}, {after.shape})")
    return probe_intervals(after - before, level, resamples, seed)
