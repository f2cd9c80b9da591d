"""PyTorch + PEFT side of `cargo xtask bench-hf`: LoRA training and KV-cache sampling of the Qwen2 model
that `emsl-hf-bench prepare` wrote (Qwen2.5-0.5B's config, random weights), with the same adapter at
initialisation (PEFT loads the kit's `adapter/`), the same batches, loss, AdamW and clipping. Prints
one JSON object like `emsl-hf-bench`:
  hf_reference.py train  --size S --dir D --steps N
  hf_reference.py sample --size S --dir D --new N --reps R
(the files are in D/S/).
Threads: set OMP_NUM_THREADS; this script also calls torch.set_num_threads with it.
"""

import argparse
import json
import os
import resource
import time
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from peft import PeftModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

# As emsl-hf-bench.rs.
BATCH = 2
SEQ = 256
N_BATCHES = 4
LR = 1e-4
SAMPLE_ROWS = 8
PROMPT = 16


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(d):
    torch.manual_seed(0)
    cfg = Qwen2Config.from_pretrained(d)
    model = Qwen2ForCausalLM(cfg).to(torch.float32)
    missing, unexpected = model.load_state_dict(load_file(os.path.join(d, "model.safetensors")), strict=False)
    # A tied head is the embedding: the only key the file may lack.
    assert unexpected == [] and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    model = PeftModel.from_pretrained(model, os.path.join(d, "adapter"), is_trainable=True)
    ids = load_file(os.path.join(d, "batches.safetensors"))["ids"].long()
    return model, ids


def train(args):
    model, ids = build(args.dir)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    losses, step_s = [], []
    for step in range(args.steps):
        b = ids[step % N_BATCHES]
        x, y = b[:, :SEQ], b[:, 1:]
        started = time.perf_counter()
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        step_s.append(time.perf_counter() - started)
    n = sum(p.numel() for p in params)
    print(json.dumps({"losses": losses, "step_s": step_s, "tokens_per_step": BATCH * SEQ,
                      "peak_mib": peak_mib(), "trainable_params": n}))


@torch.no_grad()
def sample(args):
    model, ids = build(args.dir)
    model.eval()
    prompts = torch.stack([ids[r // BATCH, r % BATCH, :PROMPT] for r in range(SAMPLE_ROWS)])
    secs, first = [], None
    for _ in range(args.reps):
        started = time.perf_counter()
        # Greedy decoding with the KV cache, as generate does it, without its stopping rules: the
        # prompt's forward pass, then one token per step.
        out = model(input_ids=prompts, use_cache=True, logits_to_keep=1)
        new = []
        for _ in range(args.new):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            new.append(nxt)
            if len(new) == args.new:
                break
            out = model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
        secs.append(time.perf_counter() - started)
        first = torch.cat(new, dim=1)[0].tolist()
    print(json.dumps({"secs": secs, "tokens_per_rep": SAMPLE_ROWS * args.new,
                      "first_row": first, "peak_mib": peak_mib()}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "sample"])
    p.add_argument("--size", default="qwen2.5-0.5b")
    p.add_argument("--dir", required=True)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--new", type=int, default=32)
    p.add_argument("--reps", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    args.dir = os.path.join(args.dir, args.size)
    {"train": train, "sample": sample}[args.mode](args)


if __name__ == "__main__":
    main()
