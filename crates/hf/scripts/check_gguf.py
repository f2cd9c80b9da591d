#!/usr/bin/env python3
"""Holds `emsl-hf import-gguf` to transformers on a real GGUF file.

    python crates/hf/scripts/check_gguf.py FILE.gguf IMPORTED_DIR --emsl-hf target/release/emsl-hf

IMPORTED_DIR is what `emsl-hf import-gguf FILE.gguf --out IMPORTED_DIR` wrote. transformers (5.x,
with the `gguf` and `torch` packages) loads the same file with `from_pretrained(gguf_file=...)`,
and the script compares:

- every weight: the largest absolute difference per tensor between transformers' dequantization
  and the imported model.safetensors (0 is bit for bit);
- the token ids of strings with leading spaces, digits, Unicode and special tokens, from the
  imported tokenizer.json (the `tokenizers` library and the kit's own `emsl-hf template --raw`)
  and from transformers' tokenizer of the file. transformers 5.25 builds a "smollm" vocabulary's
  tokenizer without SmolLM's split of every digit (`\p{N}`, which llama.cpp's `llama-vocab.cpp`
  and SmolLM's own tokenizer.json apply before GPT-2's split), so where that split matters (" ½"
  is one piece to it, two to llama.cpp) the ids are also held to transformers' tokenizer run on
  llama.cpp's pieces: that reference must match, and the differences from transformers' own are
  reported;
- the chat template's text and ids for one user turn (`emsl-hf template`);
- the next-token logits after that prompt (`emsl-hf logits` over the whole vocabulary) and a
  greedy continuation (`emsl-hf generate`);
- with --peft-work DIR, LoRA adapters both ways on the imported folder (check_peft.py, scratch files
  in DIR): one the kit trains loaded by PEFT, one PEFT trains (short `target_modules`) loaded by the
  kit, each giving the same logits after the chat prompts.

It prints one JSON object with the numbers and exits 1 when weights or ids differ, the logits
differ by more than --logit-tol, or an adapter's comparison fails. Nothing is downloaded: the model
is the file given.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import check_peft
from check_peft import emsl

STRINGS = [
    "Hi",
    " Hi",
    "  two leading spaces",
    "\tTab and\nnewline\n\n",
    "Numbers: 12345 and 3.14159, 2024-06-01, 1,000,000",
    " 42",
    "Unicode: café, naïve, Straße, 東京, 🙂, Ελληνικά, привет",
    "emoji🙂🙂 and ½ ² ٣",
    " 2024 and  7 and x²+y²=z², ١٢٣",
    "日本語のテキスト、  trailing spaces   ",
    "<|im_start|>user\nHello<|im_end|>",
    "def f(x):\n    return x ** 2  # square",
    "I'm, you're, it's, we'll, they'd",
    "",
]
PROMPTS = ["Hi", "What is 12 + 30? Answer with a number.", "Écris une phrase en français."]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("imported", type=Path)
    parser.add_argument("--emsl-hf", required=True, help="the emsl-hf binary")
    parser.add_argument("--logit-tol", type=float, default=1e-3)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--peft-work", type=Path, help="also hold LoRA adapters to PEFT (needs peft)")
    args = parser.parse_args()

    import torch
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir, gguf_name = str(args.gguf.parent), args.gguf.name
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    report = {"file": gguf_name}
    failed = []

    # Weights, every tensor.
    ours = load_file(str(args.imported / "model.safetensors"))
    theirs = model.state_dict()
    tied = "lm_head.weight" not in ours
    per_tensor = {}
    for name, t in theirs.items():
        if name == "lm_head.weight" and tied:
            ref = ours["model.embed_tokens.weight"]
        elif name not in ours:
            failed.append(f"transformers has tensor {name}, the import does not")
            continue
        else:
            ref = ours[name]
        if tuple(ref.shape) != tuple(t.shape):
            failed.append(f"{name}: shape {tuple(ref.shape)} vs {tuple(t.shape)}")
            continue
        per_tensor[name] = float((ref.float() - t.float()).abs().max())
    extra = sorted(set(ours) - set(theirs))
    if extra:
        failed.append(f"the import has tensors transformers does not: {extra[:5]}")
    worst = max(per_tensor.values()) if per_tensor else None
    report["weights"] = {
        "tensors": len(per_tensor),
        "bit_equal": sum(d == 0.0 for d in per_tensor.values()),
        "max_abs_diff": worst,
        "worst_tensor": max(per_tensor, key=per_tensor.get) if per_tensor else None,
    }
    if worst != 0.0:
        failed.append(f"weights differ, up to {worst}")

    # Token ids: the imported tokenizer.json (Python's tokenizers and the kit's), transformers'.
    import regex
    from gguf import GGUFReader

    pre = GGUFReader(str(args.gguf)).fields["tokenizer.ggml.pre"].contents()
    imported = Tokenizer.from_file(str(args.imported / "tokenizer.json"))
    model_dir = str(args.imported)
    ids = []
    for s in STRINGS:
        a = imported.encode(s, add_special_tokens=False).ids
        b = tok.encode(s, add_special_tokens=False)
        kit = emsl(args.emsl_hf, "template", "--raw", "--model", model_dir, "--prompt", s)["ids"] if s else []
        if pre == "smollm":
            pieces = [p for p in regex.split(r"(\p{N})", s) if p]
            ref = [i for p in pieces for i in tok.encode(p, add_special_tokens=False)]
        else:
            ref = b
        row = {"text": s, "equal_transformers": a == b == kit, "equal_llamacpp_pieces": a == ref == kit,
               "imported": a, "kit": kit, "transformers": b}
        ids.append(row)
        if not a == ref == kit:
            failed.append(f"token ids differ on {s!r}")
    report["tokenizer"] = {
        "pre": pre,
        "strings": len(ids),
        "equal_transformers": sum(r["equal_transformers"] for r in ids),
        "equal_llamacpp_pieces": sum(r["equal_llamacpp_pieces"] for r in ids),
        "differ_from_transformers": [r for r in ids if not r["equal_transformers"]],
    }

    # Chat template, logits, greedy continuation.
    prompts = []
    max_logit_diff = 0.0
    for p in PROMPTS:
        messages = [{"role": "user", "content": p}]
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        kit = emsl(args.emsl_hf, "template", "--model", model_dir, "--prompt", p)
        want_ids = tok.encode(text, add_special_tokens=False)
        row = {"prompt": p, "text_equal": kit["text"] == text, "ids_equal": kit["ids"] == want_ids}
        if not (row["text_equal"] and row["ids_equal"]):
            failed.append(f"chat template differs on {p!r}")
        vocab = model.config.vocab_size
        logits = emsl(args.emsl_hf, "logits", "--model", model_dir, "--prompt", p, "--top", str(vocab))
        ours_l = torch.zeros(vocab)
        for entry in logits["top"]:
            ours_l[entry["id"]] = entry["logit"]
        with torch.no_grad():
            theirs_l = model(torch.tensor([want_ids])).logits[0, -1].float()
        diff = float((ours_l - theirs_l).abs().max())
        max_logit_diff = max(max_logit_diff, diff)
        row["max_abs_logit_diff"] = diff
        row["top1_equal"] = int(ours_l.argmax()) == int(theirs_l.argmax())
        gen = emsl(args.emsl_hf, "generate", "--model", model_dir, "--prompt", p,
                   "--max-new-tokens", str(args.new_tokens))
        with torch.no_grad():
            out = model.generate(torch.tensor([want_ids]), max_new_tokens=args.new_tokens, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
        theirs_gen = out[0, len(want_ids):].tolist()
        if theirs_gen and theirs_gen[-1] == tok.eos_token_id:
            theirs_gen = theirs_gen[:-1]
        row["greedy_equal"] = gen["ids"][: len(theirs_gen)] == theirs_gen
        row["greedy_text"] = gen["text"]
        prompts.append(row)
    report["prompts"] = prompts
    report["max_abs_logit_diff"] = max_logit_diff
    if max_logit_diff > args.logit_tol:
        failed.append(f"logits differ by {max_logit_diff} > {args.logit_tol}")
    if args.peft_work:
        del model
        try:
            report["peft"] = check_peft.compare(args.imported, args.peft_work, args.emsl_hf, prompts=PROMPTS,
                                                logit_tol=args.logit_tol)
        except subprocess.CalledProcessError as e:  # the kit refused an adapter: reported with the rest
            report["peft"] = {"failed": [f"{' '.join(map(str, e.cmd[:2]))}: {e.stderr.strip()}"]}
        failed.extend(f"peft: {f}" for f in report["peft"]["failed"])
    report["failed"] = failed
    print(json.dumps(report, indent=1, ensure_ascii=False))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
