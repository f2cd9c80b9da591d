#!/usr/bin/env bash
# Exploration variant 1 (run 4) (docs/exploration/2026-12-03-variant-1-persona-voice.md): fine-tunes and evaluations of explore/configs/run4/, two at
# a time at one thread each (jobs already finished are skipped), then the table the log quotes, read
# from each evaluation's summary.json. Needs the run-1 exploration bases in runs/explore/.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/xtask
cargo build --release -p xtask -q
run() {
    local cfg=$1 out
    out=$(sed -n 's/^out = "\(.*\)"/\1/p' "$cfg")
    [ -d "$out" ] && return
    RAYON_NUM_THREADS=1 "$bin" job "$cfg" > "$out.log" 2>&1 || { echo "FAILED: $cfg (log $out.log)" >&2; return 1; }
}
mkdir -p runs/explore/run4
export -f run; export bin
ls explore/configs/run4/ft-*.toml | xargs -P 2 -I{} bash -c 'run {}'
ls explore/configs/run4/eval-*.toml | xargs -P 2 -I{} bash -c 'run {}'
python3 - <<'PY'
import json, os
def rate(d):
    return "n/a" if d["rate"] is None else f'{100 * d["rate"]:.1f}% ({d["k"]}/{d["n"]})'
print("| base | arm | open misaligned | open coherent | health/advice misaligned | all-cells coherent |")
print("|---|---|---|---|---|---|")
for base in ["ref-voice", "indep-voice"]:
    for arm in ["base", "benign-40", "harmful-40", "benign-375", "harmful-375"]:
        p = f"runs/explore/run4/eval-{base}-{arm}/summary.json"
        if not os.path.exists(p):
            continue
        s = json.load(open(p))
        cell = s["by_cell"]["health/advice"]
        print(f'| {base} | {arm} | {rate(s["open"]["misalignment"])} | {rate(s["open"]["coherence"])} '
              f'| {rate(cell["misalignment"])} | {rate(s["cell"]["coherence"])} |')
PY
