#!/usr/bin/env bash
# scripts/study.sh end to end (docs/study.md):
#   0. study.py's statistics (Holm, Benjamini-Hochberg, partial correlation, noise floor, predictors)
#      against brute force and worked examples (tests/python/test_study_stats.py);
#   1. bad grid files exit 2 with one line (study_grid.py, and study.sh --grid);
#   2. --grid studies/quick.toml: 6 tiny GPTs (depth 1-3 x 2 seeds) on a tiny corpus, then study.csv
#      with the time-resolved predictors (NaN for the 1-block members), study_correlations.csv and
#      study.h5 with corrected and partial p-values in range, the committable summaries, the curves
#      figure and the scatter plots;
#   3. study.py --from-summaries on a copy of the summaries alone reproduces study.csv and
#      study_correlations.csv byte for byte;
#   4. an interrupted study (one member's summary removed, another member's directory removed)
#      continues and trains only those two again;
#   5. a ViT grid trains `coupling-train vit` members and correlates their test accuracy.
# Usage: study.sh path/to/coupling-train
set -euo pipefail
train=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
scripts=$here/../scripts
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export COUPLING_TRAIN=$train

# 0. Statistics.
$python "$here/python/test_study_stats.py"

# 1. Bad grid files: exit 2, one line on stderr, nothing on stdout.
bad() {  # NAME EXPECTED-MESSAGE-REGEX, the file on stdin
  cat > "$work/$1.toml"
  local status=0
  $python "$scripts/study_grid.py" "$work/$1.toml" --train "$train" > "$work/$1.out" 2> "$work/$1.err" || status=$?
  if [[ $status -ne 2 || -s $work/$1.out || $(wc -l < "$work/$1.err") -ne 1 ]] || ! grep -Eq -e "$2" "$work/$1.err"; then
    echo "FAIL bad grid $1 (status $status)"; cat "$work/$1.out" "$work/$1.err"; exit 1
  fi
}
bad not_toml "not valid TOML" <<< 'model = "gpt'
bad no_model 'give model = "gpt" or "vit"' <<< $'[grid]\nlayers = [2]'
bad unknown_flag "'layer' is not a flag of coupling-train gpt" <<< $'model = "gpt"\n[grid]\nlayer = [2, 4]'
bad vit_flag "'context' is not a flag of coupling-train vit" <<< $'model = "vit"\n[fixed]\ncontext = 16\n[grid]\nseed = [1]'
bad refused "'out' cannot be set in a grid" <<< $'model = "gpt"\n[fixed]\nout = "x"\n[grid]\nseed = [1]'
bad type "--layers takes an integer" <<< $'model = "gpt"\n[grid]\nlayers = [2, 2.5]'
bad boolean "is a boolean" <<< $'model = "gpt"\n[grid]\nseed = [true]'
bad choice "--precision takes one of fp32, bf16" <<< $'model = "gpt"\n[fixed]\nprecision = "fp16"\n[grid]\nseed = [1]'
bad empty "non-empty list" <<< $'model = "gpt"\n[grid]\nseed = []'
bad both "both in \[fixed\] and in \[grid\]" <<< $'model = "gpt"\n[fixed]\nseed = 1\n[grid]\nseed = [1, 2]'
status=0
"$scripts/study.sh" --grid "$work/unknown_flag.toml" --out "$work/never" > "$work/never.log" 2>&1 || status=$?
[[ $status -eq 2 ]] && grep -q "'layer' is not a flag" "$work/never.log" && [[ ! -d $work/never/l2 ]] ||
  { echo "FAIL study.sh --grid with a bad file (status $status)"; cat "$work/never.log"; exit 1; }
echo "ok   bad grid files exit 2 with one line (10 cases, and study.sh --grid)"

# 2. The quick grid end to end.
"$scripts/study.sh" --grid "$here/../studies/quick.toml" --out "$work/s" > "$work/first.log" 2>&1 ||
  { cat "$work/first.log"; exit 1; }
$python - "$work/s" <<'PY'
import csv, glob, json, math, os, sys
import h5py
root = sys.argv[1]
rows = list(csv.DictReader(open(f"{root}/study.csv")))
assert sorted(r["member"] for r in rows) == ["l1_s1", "l1_s2", "l2_s1", "l2_s2", "l3_s1", "l3_s2"], rows
stats = ("final", "peak", "peak_step", "at10", "at50", "auc")
series = [f"m_{s}_k{k}_{o}_norm" for s in ("offdiag", "adjacent") for k in (4, 8) for o in ("ujv", "vju")]
for name in [f"{s}_{t}" for s in series + ["lss", "norm_growth_rate"] for t in stats]:
    assert name in rows[0], (name, list(rows[0]))
    for r in rows:
        value = float(r[name])
        undefined = name.startswith("m_") and r["member"].startswith("l1_")  # 1 block: no block pairs
        # a dip that stays inside the uncoupled null's band has no peak (study.py refuses it)
        refusable = name.startswith("m_") and name.endswith(("_peak", "_peak_step")) and "k4_ujv" not in name
        assert math.isnan(value) if undefined else (math.isfinite(value) or refusable), (r["member"], name, value)
for r in rows:
    assert float(r["m_offdiag_k4_ujv_norm_peak"]) <= float(r["m_offdiag_k4_ujv_norm_final"]) or r["member"].startswith("l1_")
    assert float(r["norm_growth_rate_peak"]) >= float(r["norm_growth_rate_at50"])
    assert 0 <= float(r["lss_peak_step"]) <= 40 and float(r["val_loss"]) > 0
configs = {r["member"][:2]: r["config"] for r in rows}
assert len(set(configs.values())) == 3 and all(configs[r["member"][:2]] == r["config"] for r in rows), configs

table = list(csv.DictReader(open(f"{root}/study_correlations.csv")))
byname = {t["predictor"]: t for t in table}
for needed in ("log_params", "depth", "m_offdiag_k4_ujv_norm_final", "m_offdiag_k4_ujv_norm_auc",
               "m_offdiag_k4_ujv_norm_peak_step", "lss_at10", "norm_growth_rate_peak"):
    assert needed in byname, (needed, list(byname))
assert byname["m_offdiag_k4_ujv_norm_final"]["n"] == "4" and byname["depth"]["n"] == "6", byname["depth"]
assert math.isnan(float(byname["log_params"]["partial_r"]))
defined = 0
for t in table:
    v = {k: float(x) for k, x in t.items() if k != "predictor"}
    for key in ("pearson_r", "spearman_rho"):
        assert -1 <= v[key] <= 1, (t["predictor"], key, v[key])
    assert 0 <= v["r2"] <= 1
    for kind in ("pearson", "spearman", "partial"):
        p, h, b = v[f"{kind}_p"], v[f"{kind}_p_holm"], v[f"{kind}_p_bh"]
        if kind == "partial" and math.isnan(p):
            assert math.isnan(h) and math.isnan(b) and math.isnan(v["partial_r"])
            continue
        assert 0 <= p <= b + 1e-12 and b <= h + 1e-12 and h <= 1, (t["predictor"], kind, p, b, h)  # p <= BH <= Holm
    if math.isfinite(v["partial_r"]):
        assert -1 <= v["partial_r"] <= 1
        defined += 1
    assert math.isnan(v["icc"]) or v["icc"] <= 1, (t["predictor"], v["icc"])  # ICC(1) may be below 0, not above 1
    assert math.isnan(v["anova_p"]) or 0 <= v["anova_p"] <= 1
    assert math.isnan(v["within_r"]) or -1 <= v["within_r"] <= 1
m = len(table)
smallest = min(float(t["pearson_p"]) for t in table)
assert abs(min(float(t["pearson_p_holm"]) for t in table) - min(1, m * smallest)) < 1e-12  # corrected for m tests
assert defined >= 40, defined
with h5py.File(f"{root}/study.h5", "r") as f:
    assert f.attrs["model"] == "gpt" and f.attrs["heldout_metric"] == "val_loss" and not f.attrs["higher_is_better"]
    assert f.attrs["members"] == 6 and f.attrs["configs"] == 3 and f.attrs["tested"] == m
    assert f["correlations/pearson_p_holm"].shape == (m,) and f["members/m_offdiag_k4_ujv_norm_auc"].shape == (6,)
    assert set(f["curves/member"][:]) == {i for i, n in enumerate(f["members/member"][:]) if not n.decode().startswith("l1")}
    assert 0 < f.attrs["heldout_anova_f"] and f.attrs["heldout_icc"] <= 1
summaries = sorted(glob.glob(f"{root}/summaries/*.json"))
assert [os.path.basename(s) for s in summaries] == [r["member"] + ".json" for r in rows], summaries
for path in summaries:
    s = json.load(open(path))
    assert s["kind"] == "libcoupling-study-member" and s["heldout_metric"] == "val_loss" and "out" not in s["config"]
    # each m_K series, its excess over the null, lss, lss / sqrt(L), layer linearity and the norm growth rate
    assert os.path.getsize(path) < 30000 and len(s["predictors"]) == len(stats) * (2 * len(series) + 4), path
    assert s["version"] == 2 and {"step", "lr_sum", "train_loss_smooth", "linearity"} <= set(s["trajectory"])
print(f"ok   6 members: {len(rows[0])} columns, {m} predictors with Holm and BH p, {defined} partial r; summaries")
PY
for png in study_curves study_m_offdiag_k4_ujv_norm_auc study_lss_final study_log_params; do
  test -s "$work/s/$png.png" || { echo "FAIL no $png.png"; exit 1; }
done
echo "ok   figures: study_curves.png and scatter plots"

# 3. The tables again from the summaries alone (the committable part of a study).
cp -r "$work/s/summaries" "$work/committed"
$python "$scripts/study.py" --from-summaries "$work/committed" --out "$work/again" > "$work/again.txt"
# The same numbers; to 1e-9 rather than byte for byte, since study.sh may have gathered with another
# Python (/usr/bin/python3 when COUPLING_PYTHON lacks pandas) whose scipy rounds the last bit differently.
$python - "$work/s" "$work/again" <<'PY'
import csv, math, sys
for name in ("study.csv", "study_correlations.csv"):
    a, b = (list(csv.reader(open(f"{d}/{name}"))) for d in sys.argv[1:])
    assert len(a) == len(b) and a[0] == b[0], name
    for row_a, row_b in zip(a[1:], b[1:]):
        for column, x, y in zip(a[0], row_a, row_b):
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                assert x == y, (name, column, x, y)
                continue
            assert (math.isnan(fx) and math.isnan(fy)) or math.isclose(fx, fy, rel_tol=1e-9, abs_tol=1e-12), \
                (name, row_a[0], column, x, y)
PY
echo "ok   study.py --from-summaries reproduces study.csv and study_correlations.csv"

# 4. An interrupted study continues.
rm "$work/s/l2_s1/summary.json"
rm -rf "$work/s/l3_s2"
"$scripts/study.sh" --grid "$here/../studies/quick.toml" --out "$work/s" > "$work/resume.log" 2>&1 ||
  { cat "$work/resume.log"; exit 1; }
[[ $(grep -c "done earlier" "$work/resume.log") -eq 4 ]] && grep -q "l2_s1 resumes" "$work/resume.log" &&
  grep -q "l3_s2 starts" "$work/resume.log" && [[ $(ls "$work/s/summaries" | wc -l) -eq 6 ]] ||
  { cat "$work/resume.log"; exit 1; }
echo "ok   an interrupted study continues: 4 members kept, 1 resumed, 1 restarted"

# 5. A ViT family: coupling-train vit members, test accuracy as the held-out metric.
$python "$here/python/make_images.py" "$work/images" > /dev/null
cat > "$work/vit.toml" <<EOF
model = "vit"
[fixed]
data = "$work/images"
steps = 40
patch = 4
d-model = 16
heads = 2
batch = 16
warmup = 2
lr = 0.003
eval-windows = 96
probes = 2
k = "2,4"
measure-schedule = "log:8"
[grid]
layers = [1, 2]
seed = [1, 2]
EOF
"$scripts/study.sh" --grid "$work/vit.toml" --out "$work/v" > "$work/vit.log" 2>&1 || { cat "$work/vit.log"; exit 1; }
$python - "$work/v" <<'PY'
import csv, json, sys
import h5py
root = sys.argv[1]
rows = list(csv.DictReader(open(f"{root}/study.csv")))
assert len(rows) == 4 and all(0 <= float(r["test_accuracy"]) <= 1 for r in rows), rows
assert all(json.load(open(f"{root}/{r['member']}/summary.json"))["model"] == "vit" for r in rows)
s = json.load(open(f"{root}/summaries/l2_s1.json"))
assert s["heldout_metric"] == "test_accuracy" and s["higher_is_better"] is True, s
with h5py.File(f"{root}/study.h5", "r") as f:
    assert f.attrs["model"] == "vit" and f.attrs["heldout_metric"] == "test_accuracy" and f.attrs["higher_is_better"]
print(f"ok   a ViT grid: 4 coupling-train vit members, test_accuracy {', '.join(r['test_accuracy'][:5] for r in rows)}")
PY
