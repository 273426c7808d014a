"""coupling.warmup_study on synthetic member summaries whose dips are known: where each member's dip, onset
and exit sit on each axis (linear between the measured steps), the refusal of a dip inside the null band, and
the report's tables and one-line errors. Runs on numpy and scipy only."""
import json
import math
import os
import tempfile

import numpy as np
import pytest

import coupling_path  # noqa: F401  (python/ on sys.path)
from coupling import warmup_study

STEPS = [0, 10, 20, 30, 40, 80, 160, 320]


def member(name, warmup, seed, excess, lr=0.002, heldout=1.4):
    """A summary whose m_10 - null is `excess` at STEPS (null 0.98, sd 0.001), lr_sum = 0.001 x step and the
    training loss 5 - step / 100."""
    steps = np.array(STEPS, dtype=float)
    t = {"step": STEPS, "lr_sum": list(0.001 * steps), "train_loss_smooth": list(5 - steps / 100),
         "m_offdiag_k10_ujv_norm": [0.98 + e for e in excess], "m_offdiag_k10_ujv_norm_null": [0.98] * len(STEPS),
         "m_offdiag_k10_ujv_norm_null_sd": [0.001] * len(STEPS)}
    return {"kind": "libcoupling-study-member", "member": name, "heldout": heldout,
            "config": {"warmup": warmup, "lr": lr, "seed": seed}, "trajectory": t,
            "predictors": {"m_offdiag_k10_ujv_norm_excess_final": excess[-1],
                           "m_offdiag_k10_ujv_norm_excess_auc": float(np.mean(excess))}}


def write(directory, summaries):
    for s in summaries:
        with open(os.path.join(directory, s["member"] + ".json"), "w") as f:
            json.dump(s, f)


def test_dips_and_crossings_on_every_axis(capsys):
    fast = [0.0, -0.1, -0.3, -0.2, -0.1, -0.05, -0.02, -0.01]  # onset between 10 and 20, exit between 30 and 40
    flat = [0.0, 0.0005, -0.001, 0.0, 0.0, 0.0, 0.0, 0.0]  # never leaves the null's band (2 sd = 0.002)
    with tempfile.TemporaryDirectory() as d:
        write(d, [member("a1", 10, 1, fast), member("a2", 10, 2, fast), member("b1", 50, 1, flat),
                  member("b2", 50, 2, flat, heldout=1.5)])
        members = warmup_study.load(d)
        by_name = {m["member"]: m for m in members}
        assert warmup_study.dip(by_name["a1"]) == (2, True)  # step 20, m_10 0.68 < 0.98 - 0.002
        assert warmup_study.dip(by_name["b1"])[1] is False
        # -0.15 is crossed a quarter of the way from step 10 (-0.1) to 20 (-0.3), and going back up half way
        # from step 30 (-0.2) to 40 (-0.1): on the step, lr_sum and loss axes alike.
        assert warmup_study.crossing(by_name["a1"], "step", "onset") == pytest.approx(12.5)
        assert warmup_study.crossing(by_name["a1"], "step", "exit") == pytest.approx(35.0)
        assert warmup_study.crossing(by_name["a1"], "lr_sum", "onset") == pytest.approx(0.0125)
        assert warmup_study.crossing(by_name["a1"], "train_loss_smooth", "exit") == pytest.approx(4.65)
        assert math.isnan(warmup_study.crossing(by_name["b1"], "step", "onset"))
        warmup_study.report(members)
    out = capsys.readouterr().out
    assert "| a1 | warmup 10, lr 0.002 | 20 | 0.0200 |" in out and "no: no dip" in out
    assert "## Onset and exit" in out and "## Within the architecture" in out


def test_bad_input_is_one_line(capsys):
    with tempfile.TemporaryDirectory() as d:
        assert warmup_study.main([d]) == 2  # no summaries
        old = member("x", 10, 1, [0.0] * len(STEPS))
        del old["trajectory"]["lr_sum"]  # a version-1 summary has no trajectory of this kind
        write(d, [old])
        assert warmup_study.main([d]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("warmup_study: ") for line in err), err
    assert "lacks lr_sum" in err[1]
