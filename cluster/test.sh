#!/usr/bin/env bash
# `make slurm-test`: the Slurm executor against a real one-node Slurm (cluster/one-node.sh), not a mock.
#
# 1. The smoke profile with `--executor slurm --wait`: its results must verify against results-smoke/
#    (the same values; where this CPU's kernels differ from the one that made the reference, values
#    within tolerance: job identities hash the CPU's features).
# 1b. Your own model's fine-tune config (`cargo xtask own-model --executor slurm`): the local
#    executor's bytes.
# 2. Three faults, each on the controls figure in a fresh folder: a job that fails (its stage config is
#    made unreadable while it waits for its input), a job killed at its time limit (its config made
#    long, every limit 1 minute), and `scancel` of a running job. Each must stop `--wait` with a report
#    that names the job, its Slurm state and its log; a rerun must complete the graph with the tables
#    of step 1's run on this machine, byte for byte.
# 3. A coordinator killed right after `sbatch` took a job (before it recorded the id), in a folder
#    whose path has a `%`: the next call must adopt that job rather than submit it again, and the logs
#    must be where the reports say (sbatch would expand an unescaped `%j`).
#
# Needs root (the daemons) and, where slurm-wlm and munge are missing, apt-get; exits non-zero
# otherwise. Leaves the cluster down.
set -euo pipefail
cd "$(dirname "$0")/.."

work=target/slurm-test
cluster/one-node.sh up
trap 'cluster/one-node.sh down' EXIT
rm -rf "$work"
mkdir -p "$work"

say() { echo "slurm-test: $*" >&2; }
fail() { echo "slurm-test: FAILED: $*" >&2; exit 1; }

# 1. The smoke profile, all of it.
started=$(date +%s)
cargo xtask reproduce --profile smoke --out "$work/smoke" --executor slurm --wait
say "smoke profile on Slurm: $(( $(date +%s) - started )) s"
cargo xtask verify --results "$work/smoke" --reference results-smoke

# 1b. Your own model's stage (`cargo xtask own-model`) as a batch job of emsl-hf: a fine-tune of a tiny
# checkpoint that a test helper writes. Its outputs must be the local executor's bytes, and a second
# look must find it current.
own=$work/own
EMSL_OWN_FIXTURE="$(pwd)/$own" cargo test --workspace --locked --test own_graph -- --ignored --exact \
    write_the_cluster_test_fixture
hf=target/debug/emsl-hf
cargo xtask own-model "$own/ft.toml" --out "$own/local" --hf-binary "$hf"
cargo xtask own-model "$own/ft.toml" --out "$own/slurm" --hf-binary "$hf" --executor slurm --wait
cmp -s "$own/local/ft/SHA256SUMS" "$own/slurm/ft/SHA256SUMS" \
    || fail "own-model on Slurm wrote other bytes than the local executor"
(cd "$own/slurm/ft" && sha256sum --quiet -c SHA256SUMS) || fail "$own/slurm/ft/SHA256SUMS does not check"
cargo xtask own-model "$own/ft.toml" --out "$own/slurm" --hf-binary "$hf" --check \
    || fail "own-model on Slurm is not current after --wait"
say "own-model on Slurm: the local executor's bytes ($(wc -l < "$own/slurm/ft/SHA256SUMS") files), then current"

# The job key in a Slurm job name, emsl-<key>-<tag> (the tag is new for each submission).
key_of() { local k=${1#emsl-}; echo "${k%-*}"; }

# The key of a job of $1 that waits for an input (Slurm reason Dependency) and trains (its config has
# `steps`), as soon as there is one.
waiting_training_job() {
    local out=$1 name reason key
    for _ in $(seq 1 300); do
        while IFS='|' read -r name reason; do
            key=$(key_of "$name")
            if [ "$reason" = Dependency ] && grep -q '^steps = ' "$out/jobs/$key.toml" 2>/dev/null; then
                echo "$key"
                return
            fi
        done < <(squeue -h -t PENDING -o '%j|%r')
        sleep 0.1
    done
    fail "no job of $out waited for its input"
}

# Checks that `--wait` on $1 fails and reports state $2 of job $3 with its log; then that a rerun
# completes the figure with the tables of step 1's run on this machine, byte for byte.
expect_failure_then_rerun() {
    local out=$1 state=$2 key=$3
    shift 3
    local report="$out.report"
    if cargo xtask reproduce --profile smoke --figure controls --out "$out" --executor slurm --wait "$@" \
        2>"$report"; then
        fail "--wait succeeded although job $key was made to end in $state"
    fi
    grep -q "job $key (.*) failed on Slurm: $state" "$report" || { cat "$report" >&2; fail "no $state report of $key"; }
    grep -qF "its log is $(pwd)/$out/jobs/$key.log" "$report" || { cat "$report" >&2; fail "the report of $key does not name its log"; }
    [ -s "$out/jobs/$key.log" ] || fail "the log the report of $key names, $out/jobs/$key.log, is missing or empty"
    say "fault $state: reported as: $(grep -m1 "failed on Slurm" "$report")"
    cargo xtask reproduce --profile smoke --figure controls --out "$out" --executor slurm --wait "$@" 2>"$out.rerun" \
        || { cat "$out.rerun" >&2; fail "the rerun after $state did not complete"; }
    for t in "$out"/controls/*.parquet; do
        cmp -s "$t" "$work/smoke/controls/$(basename "$t")" || fail "$t differs from step 1's after the rerun"
    done
    (cd "$out/controls" && sha256sum --quiet -c SHA256SUMS) || fail "$out/controls/SHA256SUMS does not check"
    say "fault $state: the rerun completed with step 1's tables ($(ls "$out"/controls/*.parquet | wc -l) files, same bytes)"
}

# 2a. A job that fails: its config becomes unreadable before it starts. Its dependants are cancelled.
out=$work/fails
cargo xtask reproduce --profile smoke --figure controls --out "$out" --executor slurm
key=$(waiting_training_job "$out")
echo "not a stage config" > "$out/jobs/$key.toml"
expect_failure_then_rerun "$out" FAILED "$key"
# Its dependants end with it (cancelled by Slurm or by the coordinator), never left pending.
grep -Eq "not run: its input $key failed|queued job\(s\) that need it were cancelled" "$out.report" \
    || fail "the report does not say what happened to the dependants of $key"

# 2b. A job killed at its time limit: every job gets 1 minute (the smoke jobs take seconds), and one
# is made to train for far longer. Slurm checks limits about every 30 s: this takes 60 to 90 s.
out=$work/timeout
limits=(--default-time 1 --min-time 1)
cargo xtask reproduce --profile smoke --figure controls --out "$out" --executor slurm "${limits[@]}"
key=$(waiting_training_job "$out")
sed -i 's/^steps = .*/steps = 100000000/' "$out/jobs/$key.toml"
expect_failure_then_rerun "$out" TIMEOUT "$key" "${limits[@]}"

# 2c. scancel of a running job.
out=$work/cancelled
cargo xtask reproduce --profile smoke --figure controls --out "$out" --executor slurm
name=""
for _ in $(seq 1 300); do
    name=$(squeue -h -t RUNNING -o '%j' | grep '^emsl-' | head -n1 || true)
    [ -n "$name" ] && break
    sleep 0.1
done
[ -n "$name" ] || fail "no job of $out started running"
scancel --name="$name"
expect_failure_then_rerun "$out" CANCELLED "$(key_of "$name")"

# 3. The coordinator killed between sbatch and its record, in a folder named with a `%`: an sbatch in
# front of the real one kills its caller (the coordinator) once the controller took the first job.
# The rerun goes through an sbatch that logs each job name, so a second submission would show.
out=$work/killed-100%j
real_sbatch=$(command -v sbatch)
kill_bin=$work/kill-after-sbatch
count_bin=$work/count-sbatch
names=$work/killed.sbatch-names
mkdir -p "$kill_bin" "$count_bin"
printf '#!/bin/bash\n%q "$@" >/dev/null || exit\nkill -9 "$PPID"\n' "$real_sbatch" >"$kill_bin/sbatch"
printf '#!/bin/bash\nfor a in "$@"; do case "$a" in --job-name=*) echo "${a#--job-name=}" >>%q;; esac; done\nexec %q "$@"\n' \
    "$(pwd)/$names" "$real_sbatch" >"$count_bin/sbatch"
chmod +x "$kill_bin/sbatch" "$count_bin/sbatch"
if PATH="$kill_bin:$PATH" cargo xtask reproduce --profile smoke --figure controls --out "$out" \
    --executor slurm 2>"$out.killed"; then
    fail "the coordinator was not killed after its first sbatch"
fi
records=$(grep -l '^name ' "$out"/jobs/*.slurm || true)
[ "$(echo "$records" | grep -c .)" = 1 ] && ! grep -q '^id ' "$records" \
    || fail "expected one record with a name and no id after the kill, found: ${records:-none}"
key=$(basename "$records" .slurm)
name=$(sed -n 's/^name //p' "$records")
PATH="$count_bin:$PATH" cargo xtask reproduce --profile smoke --figure controls --out "$out" \
    --executor slurm --wait 2>"$out.rerun" \
    || { cat "$out.rerun" >&2; fail "the run after the killed coordinator did not complete"; }
grep -qF "job $key: adopted Slurm job" "$out.rerun" && grep -qF "($name)" "$out.rerun" \
    || { cat "$out.rerun" >&2; fail "job $key ($name) was not adopted"; }
if grep -q "^emsl-$key-" "$names"; then fail "job $key was submitted again after it was adopted"; fi
for t in "$out"/controls/*.parquet; do
    cmp -s "$t" "$work/smoke/controls/$(basename "$t")" || fail "$t differs from step 1's"
done
[ -s "$out/jobs/$key.log" ] || fail "the log of $key is not at $out/jobs/$key.log (was the % expanded?)"
say "killed coordinator: job $key adopted, not submitted twice ($(wc -l <"$names") other jobs submitted); its log is in $out"

say "ok: smoke profile on Slurm verifies against results-smoke; FAILED, TIMEOUT and CANCELLED reported and recovered; a killed coordinator's submission adopted, not repeated"
