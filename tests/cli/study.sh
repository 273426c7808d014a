#!/usr/bin/env bash
# scripts/study.sh --quick end to end: 8 tiny GPTs on a tiny corpus, then study.csv, study.h5
# (members and correlations, including the predictors a 1-block member leaves undefined) and
# one scatter plot per predictor; an interrupted study (one member's summary removed, another
# member's directory removed) continues and trains only those two again.
# Usage: study.sh path/to/coupling-train
set -euo pipefail
train=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export COUPLING_TRAIN=$train

"$here/../scripts/study.sh" --quick --out "$work/s" --steps 20 > "$work/first.log" 2>&1 || { cat "$work/first.log"; exit 1; }
$python - "$work/s" <<'PY'
import csv, sys, h5py
root = sys.argv[1]
rows = list(csv.DictReader(open(f"{root}/study.csv")))
assert len(rows) == 8, len(rows)
with h5py.File(f"{root}/study.h5", "r") as f:
    names = [n.decode() if isinstance(n, bytes) else n for n in f["correlations/predictor"][:]]
    for needed in ("log_params", "depth", "width", "m_offdiag_K4", "lss", "norm_growth_rate"):
        assert needed in names, (needed, names)
    n = dict(zip(names, f["correlations/n"][:]))
    assert n["m_offdiag_K4"] == 4 and n["depth"] == 8, n  # 1-block members have no coupling
    for key in ("pearson_r", "spearman_rho", "pearson_p", "spearman_p", "r2"):
        values = f[f"correlations/{key}"][:]
        assert ((values >= -1) & (values <= 1)).all(), (key, values)
print(f"ok   8 members, {len(names)} predictors correlated with the held-out loss")
PY
test -s "$work/s/study_m_offdiag_K4.png" && test -s "$work/s/study_log_params.png"
echo "ok   scatter plots"

rm "$work/s/d16_l2_lr0.01/summary.json"
rm -rf "$work/s/d32_l1_lr0.003"
"$here/../scripts/study.sh" --quick --out "$work/s" --steps 20 > "$work/again.log" 2>&1 || { cat "$work/again.log"; exit 1; }
[[ $(grep -c "done earlier" "$work/again.log") -eq 6 ]] && grep -q "d16_l2_lr0.01 resumes" "$work/again.log" &&
  grep -q "d32_l1_lr0.003 starts" "$work/again.log" || { cat "$work/again.log"; exit 1; }
echo "ok   an interrupted study continues: 6 members kept, 1 resumed, 1 restarted"
