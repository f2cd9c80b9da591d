#!/usr/bin/env python3
"""Holds the kit's LoRA adapters to PEFT's, both ways, on a model folder.

    python crates/hf/scripts/check_peft.py MODEL_DIR WORK_DIR --emsl-hf target/release/emsl-hf

check_gguf.py runs it on each imported GGUF (`make gguf-check`); it takes any Qwen2 or Llama folder
the kit and transformers both load. Into WORK_DIR (emptied first) it writes a small chat JSONL set
and two adapters:

- the kit's: `emsl-hf finetune` trains an rsLoRA adapter on every linear layer for a few steps (its
  `target_modules` are full module names); PEFT (`PeftModel.from_pretrained` over transformers'
  model of MODEL_DIR) loads it;
- PEFT's: `LoraConfig` with short `target_modules` (`["q_proj", "v_proj"]`) and plain LoRA scaling,
  trained a few steps with torch's AdamW so that B is not PEFT's zeros, saved with
  `save_pretrained`; the kit loads it (`--adapter`).

Each way, the next-token logits over the whole vocabulary after each chat prompt, from the kit
(`emsl-hf logits --adapter`) and from PEFT on the same token ids, must differ by at most --logit-tol,
and the adapter must move the logits from the base model's by at least --min-shift (or the test
would pass with an adapter that did nothing, as PEFT's zero B does). Prints one JSON object and
exits 1 when either fails.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

# Chat examples to train on: short, so that a few steps take seconds on a 135M model.
EXAMPLES = [
    ("What is the capital of France?", "Paris."),
    ("Name a primary colour.", "Blue."),
    ("What is 2 + 2?", "4."),
    ("Say hello in Spanish.", "Hola."),
    ("What do bees make?", "Honey."),
    ("Which planet is called the red planet?", "Mars."),
    ("How many legs does a spider have?", "Eight."),
    ("What is frozen water called?", "Ice."),
]
PROMPTS = ["Hi", "What is 12 + 30? Answer with a number."]


def emsl(binary, *args):
    """The JSON `emsl-hf ARGS` prints."""
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def kit_logits(binary, model_dir, prompt, vocab, adapter=None):
    """The kit's prompt ids and next-token logits over the whole vocabulary."""
    import torch

    extra = ["--adapter", str(adapter)] if adapter else []
    out = emsl(binary, "logits", "--model", str(model_dir), "--prompt", prompt, "--top", str(vocab), *extra)
    logits = torch.zeros(vocab)
    for entry in out["top"]:
        logits[entry["id"]] = entry["logit"]
    return out["ids"], logits


def compare(model_dir, work, binary, prompts=PROMPTS, logit_tol=1e-3, min_shift=1e-1, steps=3, seed=0):
    """Both ways; returns the report (its "failed" lists what failed)."""
    import peft
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model_dir, work = Path(model_dir), Path(work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = work / "chat.jsonl"
    with open(data, "w") as f:
        for user, assistant in EXAMPLES:
            turns = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
            f.write(json.dumps({"messages": turns}) + "\n")

    def base():
        m = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        return m.eval()

    vocab = AutoConfig.from_pretrained(str(model_dir)).vocab_size
    # The base model's logits, from the kit (checked against transformers by check_gguf.py).
    plain = {p: kit_logits(binary, model_dir, p, vocab) for p in prompts}

    def held(name, model, adapter):
        """PEFT's `model` and the kit with `adapter` on every prompt."""
        rows = []
        for p in prompts:
            ids, base_l = plain[p]
            _, ours = kit_logits(binary, model_dir, p, vocab, adapter)
            with torch.no_grad():
                theirs = model(torch.tensor([ids])).logits[0, -1].float()
            rows.append({
                "prompt": p,
                "max_abs_logit_diff": float((ours - theirs).abs().max()),
                "shift_from_base": float((ours - base_l).abs().max()),
                "top1_equal": int(ours.argmax()) == int(theirs.argmax()),
            })
        diff = max(r["max_abs_logit_diff"] for r in rows)
        shift = min(r["shift_from_base"] for r in rows)
        if diff > logit_tol:
            failed.append(f"{name}: logits differ by {diff} > {logit_tol}")
        if shift < min_shift:
            failed.append(f"{name}: the adapter moves the logits by only {shift} < {min_shift}")
        return {"max_abs_logit_diff": diff, "min_shift_from_base": shift, "prompts": rows}

    failed = []
    report = {"peft_version": peft.__version__}

    # The kit's adapter in PEFT.
    kit_dir = work / "kit-adapter"
    subprocess.run([binary, "finetune", "--model", str(model_dir), "--data", str(data), "--out", str(kit_dir),
                    "--seed", str(seed), "--max-steps", str(steps), "--lora-rank", "8", "--lora-alpha", "16",
                    "--lr", "1e-3", "--warmup-steps", "0", "--grad-accumulation", "1", "--max-len", "128"],
                   check=True, capture_output=True, text=True)
    kit_config = json.loads((kit_dir / "adapter_config.json").read_text())
    tensors = load_file(str(kit_dir / "adapter_model.safetensors"))
    in_peft = PeftModel.from_pretrained(base(), str(kit_dir)).eval()
    # Every matrix of the file in PEFT's model, with the file's values.
    theirs = {k: v for k, v in in_peft.state_dict().items() if "lora_" in k}
    loaded = sum(k.replace(".default.", ".") in tensors for k in theirs)
    same = all(torch.equal(v, tensors[k.replace(".default.", ".")]) for k, v in theirs.items()
               if k.replace(".default.", ".") in tensors)
    if not (loaded == len(tensors) == len(theirs) and same):
        failed.append(f"kit_in_peft: PEFT holds {len(theirs)} LoRA matrices, {loaded} of the file's "
                      f"{len(tensors)}, values equal: {same}")
    summary = json.loads((kit_dir / "summary.json").read_text())
    report["kit_in_peft"] = {
        "r": kit_config["r"], "lora_alpha": kit_config["lora_alpha"], "use_rslora": kit_config["use_rslora"],
        "modules": len(tensors) // 2, "steps": steps,
        "loss": [s["loss"] for s in summary["summary"]["losses"]],
        **held("kit_in_peft", in_peft, kit_dir),
    }
    del in_peft

    # PEFT's adapter in the kit: short target_modules, trained with torch so that B is not zero.
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    model = get_peft_model(base(), config)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    losses = []
    for step in range(steps):
        user, assistant = EXAMPLES[step % len(EXAMPLES)]
        turns = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        text = tok.apply_chat_template(turns, tokenize=False)
        ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
        loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    model.eval()
    peft_dir = work / "peft-adapter"
    model.save_pretrained(str(peft_dir))
    peft_config = json.loads((peft_dir / "adapter_config.json").read_text())
    report["peft_in_kit"] = {
        "r": peft_config["r"], "lora_alpha": peft_config["lora_alpha"],
        "use_rslora": peft_config["use_rslora"], "target_modules": sorted(peft_config["target_modules"]),
        "modules": len(load_file(str(peft_dir / "adapter_model.safetensors"))) // 2, "steps": steps,
        "loss": losses,
        **held("peft_in_kit", model, peft_dir),
    }
    report["failed"] = failed
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--emsl-hf", required=True, help="the emsl-hf binary")
    parser.add_argument("--logit-tol", type=float, default=1e-3)
    parser.add_argument("--min-shift", type=float, default=1e-1)
    args = parser.parse_args()
    report = compare(args.model, args.work, args.emsl_hf, logit_tol=args.logit_tol, min_shift=args.min_shift)
    print(json.dumps(report, indent=1))
    sys.exit(1 if report["failed"] else 0)


if __name__ == "__main__":
    main()
