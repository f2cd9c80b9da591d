"""PyTorch reference of the kit's GPT, loss and AdamW for `cargo xtask bench`.

Reads the files `emsl-bench prepare` wrote (config, initial weights, batches), so both sides start from
the same weights and see the same batches, and prints one JSON object like `emsl-bench`:
  reference.py train  --size S --dir D --steps N
  reference.py sample --size S --dir D --new N --reps R
Threads: set OMP_NUM_THREADS / MKL_NUM_THREADS; this script also calls torch.set_num_threads with it.
"""

import argparse
import json
import math
import os
import resource
import struct
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

BATCH = 16
N_BATCHES = 4
LR = 1e-3
PROMPT = 8
DTYPES = {"F32": torch.float32, "U32": torch.int32, "I64": torch.int64}


def load_safetensors(path):
    """A safetensors file as a dict of tensors (u32 read as i32: token ids are small)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        t = torch.frombuffer(bytearray(body[a:b]), dtype=DTYPES[meta["dtype"]])
        out[name] = t.reshape(meta["shape"]).clone()
    return out


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.h = c["d_model"], c["n_head"]
        self.ln_1 = torch.nn.LayerNorm(d, eps=1e-5)
        self.attn = torch.nn.Module()
        self.attn.c_attn = torch.nn.Linear(d, 3 * d)
        self.attn.c_proj = torch.nn.Linear(d, d)
        self.ln_2 = torch.nn.LayerNorm(d, eps=1e-5)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc = torch.nn.Linear(d, c["d_ff"])
        self.mlp.c_proj = torch.nn.Linear(c["d_ff"], d)

    def attention(self, x, cache):
        b, t, c = x.shape
        q, k, v = self.attn.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        # Causal over the whole context; with a cache, one new position attends to everything before.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] > 1)
        return self.attn.c_proj(y.transpose(1, 2).reshape(b, t, c))

    def forward(self, x, cache=None):
        x = x + self.attention(self.ln_1(x), cache)
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = torch.nn.Embedding(c["vocab_size"], c["d_model"])
        self.wpe = torch.nn.Embedding(c["n_ctx"], c["d_model"])
        self.h = torch.nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = torch.nn.LayerNorm(c["d_model"], eps=1e-5)

    def forward(self, ids, caches=None, past=0):
        pos = torch.arange(past, past + ids.shape[1])
        x = self.wte(ids) + self.wpe(pos)
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i])
        return self.ln_f(x) @ self.wte.weight.t()  # head tied to the embedding


def build(args):
    with open(os.path.join(args.dir, f"{args.size}.json")) as f:
        cfg = json.load(f)
    model = Gpt(cfg)
    weights = load_safetensors(os.path.join(args.dir, f"{args.size}-init.safetensors"))
    state = model.state_dict()
    assert sorted(state) == sorted(weights), (sorted(state), sorted(weights))
    model.load_state_dict(weights)
    ids = load_safetensors(os.path.join(args.dir, f"{args.size}-batches.safetensors"))["ids"].long()
    return cfg, model, ids


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(args):
    cfg, model, ids = build(args)
    t = cfg["n_ctx"]
    # The kit's AdamW: decay matrices only, not biases, layer norms or the position table.
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("wpe")]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and not n.startswith("wpe"))]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=LR, betas=(0.9, 0.95), eps=1e-8,
    )
    losses, step_s = [], []
    for step in range(args.steps):
        b = ids[step % N_BATCHES]
        x, y = b[:, :t], b[:, 1:]
        started = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = loss.item()
        step_s.append(time.perf_counter() - started)
        losses.append(value)
    print(json.dumps({"losses": losses, "step_s": step_s, "tokens_per_step": BATCH * t,
                      "peak_mib": peak_mib()}))


@torch.no_grad()
def sample(args):
    cfg, model, ids = build(args)
    prompt = ids[0][:, :PROMPT]
    secs, rows = [], None
    for _ in range(args.reps):
        started = time.perf_counter()
        caches = [dict() for _ in range(cfg["n_layer"])]
        nxt, past, out = prompt, 0, []
        for _ in range(args.new):
            logits = model(nxt, caches, past)
            past += nxt.shape[1]
            nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            out.append(nxt)
        secs.append(time.perf_counter() - started)
        rows = torch.cat(out, dim=1)
    print(json.dumps({"secs": secs, "tokens_per_rep": BATCH * args.new,
                      "first_row": rows[0].tolist(), "peak_mib": peak_mib()}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "sample"])
    p.add_argument("--size", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    n = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    (train if args.mode == "train" else sample)(args)


if __name__ == "__main__":
    main()
