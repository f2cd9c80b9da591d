#!/usr/bin/env python3
"""Writes tiny random GGUF files with gguf-py's own writer (llama.cpp's package), for check_gguf.py.

    python crates/hf/scripts/write_tiny_gguf.py VOCAB.gguf OUT_DIR

The one real GGUF this project's machines reach is a Llama (SmolLM2). These files add the other
paths of the import at a size that runs in seconds: `qwen2.gguf` (Qwen2: q/k/v biases, rows as
trained, a tied head, the "qwen2" pre-tokenizer) and `llama3.gguf` (Llama with an untied head and
the "llama-bpe" pre-tokenizer, q/k rows permuted as llama.cpp's converter does). Both take the
vocabulary, merges, token types and chat template of VOCAB.gguf, and weights drawn with seed 0 and
quantized by gguf-py to Q4_0, Q4_1, Q8_0 and F16 (norms and biases F32).
"""

import argparse
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

# Hidden 64 in 4 heads of 16 sharing 2 key/value heads, MLP 128, 2 layers.
C, FF, HEADS, KV, D, LAYERS = 64, 128, 4, 2, 16, 2
TYPES = {"token_embd": Q.Q8_0, "output": Q.Q8_0, "attn_q": Q.Q4_0, "attn_k": Q.Q4_1, "attn_v": Q.Q8_0,
         "attn_output": Q.F16, "ffn_gate": Q.Q4_0, "ffn_up": Q.Q4_1, "ffn_down": Q.Q8_0}


def llama_permute(w, heads):
    """llama.cpp's `LlamaModel.permute`: each head's rows from two halves to interleaved pairs."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write(path, arch, pre, vocab):
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), arch=arch)
    w.add_block_count(LAYERS)
    w.add_context_length(256)
    w.add_embedding_length(C)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(1_000_000.0 if arch == "qwen2" else 500_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["types"])
    w.add_token_merges(vocab["merges"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(vocab["template"])

    def tensor(name, shape, kind):
        scale = {"norm": 0.1, "bias": 0.5, "weight": 0.3}[kind]
        a = ((1.0 if kind == "norm" else 0.0) + scale * rng.standard_normal(shape)).astype(np.float32)
        module = name.split(".")[-2]
        if arch == "llama" and module in ("attn_q", "attn_k"):
            a = llama_permute(a, HEADS if module == "attn_q" else KV)
        qtype = Q.F32 if kind != "weight" else TYPES[module]
        if qtype == Q.F32:
            w.add_tensor(name, a)
        elif qtype == Q.F16:
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)

    v = len(vocab["tokens"])
    tensor("token_embd.weight", (v, C), "weight")
    tensor("output_norm.weight", (C,), "norm")
    if arch == "llama":
        tensor("output.weight", (v, C), "weight")
    for i in range(LAYERS):
        p = f"blk.{i}."
        tensor(p + "attn_norm.weight", (C,), "norm")
        tensor(p + "ffn_norm.weight", (C,), "norm")
        for module, rows in (("attn_q", HEADS * D), ("attn_k", KV * D), ("attn_v", KV * D)):
            tensor(p + module + ".weight", (rows, C), "weight")
            if arch == "qwen2":
                tensor(p + module + ".bias", (rows,), "bias")
        tensor(p + "attn_output.weight", (C, HEADS * D), "weight")
        tensor(p + "ffn_gate.weight", (FF, C), "weight")
        tensor(p + "ffn_up.weight", (FF, C), "weight")
        tensor(p + "ffn_down.weight", (C, FF), "weight")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vocab", type=Path, help="a GGUF file with a byte-level BPE vocabulary")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    fields = gguf.GGUFReader(str(args.vocab)).fields
    vocab = {
        "tokens": fields["tokenizer.ggml.tokens"].contents(),
        "types": fields["tokenizer.ggml.token_type"].contents(),
        "merges": fields["tokenizer.ggml.merges"].contents(),
        "template": fields["tokenizer.chat_template"].contents(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "qwen2.gguf", "qwen2", "qwen2", vocab)
    write(args.out / "llama3.gguf", "llama", "llama-bpe", vocab)


if __name__ == "__main__":
    main()
