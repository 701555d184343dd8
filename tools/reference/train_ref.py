#!/usr/bin/python3
"""Reference training trajectory for VPT-deep, VPT-shallow and linear probing on the `fixture` ViT.

Usage:
  /usr/bin/python3 tools/reference/train_ref.py --method vpt-deep|vpt-shallow|linear \
      --out test/fixtures/train_ref_<method>.safetensors [--steps 6] [--lr 0.5]

Written from docs/spec/vpt.md (official VPT semantics), not from the TypeScript trainer.

What it does (all deterministic, CPU):
  * backbone: test/fixtures/vit_fixture.safetensors (`fixture` arch: img 32, patch 8, D 96, depth 3, heads 3),
    frozen, eval mode; its 10-way head is dropped.
  * method:
      vpt-shallow  prompt_embeddings [1,N,D] inserted after CLS, no pos embed: [CLS, P, patches] -> blocks.
      vpt-deep     the same at block 0; before block i >= 1 the prompt slots are REPLACED by
                   deep_prompt_embeddings[i-1]: h = cat(h[:, :1], P_i, h[:, 1+N:]).
      linear       no prompts.
    Prompt dropout 0. Final norm -> token 0 (CLS) -> head = Linear(D, C).
  * init (torch.Generator seed 0, drawn in this order, float32):
      prompt_embeddings       U(-v, v), v = sqrt(6 / (3*p*p + D))       (vpt-*)
      deep_prompt_embeddings  U(-v, v), shape [L-1, N, D]              (vpt-deep)
      head.weight             N(0, 2/C)  (kaiming_normal_, mode fan_out: std sqrt(2/C))
      head.bias               0
  * data (torch.Generator seed 1): for t in 0..steps-1: x_t = randn(6,3,32,32), then y_t = randint(0, C, (6,)).
    x_t is rounded to float16 right after drawing (float16-exact values) and stored as F16, which keeps the
    file under 300 KB; the stored F16 values ARE the inputs (decode F16 -> f32 exactly). y_t is stored as F32.
  * loss: softmax cross-entropy, mean over the batch.
  * optimiser: torch.optim.SGD(momentum 0.9, dampening 0, nesterov False), weight decay 1e-4 on every trainable
    tensor except head.bias (param groups). Per step t (torch semantics):
        g = grad + wd * p;  buf = g if t == 0 else 0.9 * buf + g;  p -= lr_t * buf
    Note lr_0 = 0: step 0 does not move the parameters but does seed the momentum buffer.
  * lr_t: base = lr * batch / 256 (VPT's rescale); t < W (W = 2): base * t / W; else
    base * 0.5 * (1 + cos(pi * (t - W) / (steps - W))).
  * math in float64 (float32 stored values cast up); everything stored float32 except x (F16, exact).

Stored tensors: init.<name>, final.<name>, grad0.<name> (raw loss gradient at step 0, no weight decay),
x.<t> [6,3,32,32], y.<t> [6], lr [steps], loss [steps] (loss of batch t before update t).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402
from vit_ref import VisionTransformer, get_arch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BACKBONE = os.path.join(REPO, "test", "fixtures", "vit_fixture.safetensors")

N_PROMPTS = 3
NUM_CLASSES = 4
BATCH = 6
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
NO_DECAY = ("head.bias",)
WARMUP_STEPS = 2
INIT_SEED = 0
DATA_SEED = 1
METHODS = ("vpt-deep", "vpt-shallow", "linear")


# ---- schedule -----------------------------------------------------------------------------------
def lr_schedule(base_lr: float, steps: int, warmup: int = WARMUP_STEPS):
    if steps <= warmup:
        raise ValueError(f"--steps must be > {warmup} (warmup steps)")
    out = []
    for t in range(steps):
        if t < warmup:
            out.append(base_lr * t / warmup)
        else:
            out.append(base_lr * 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / (steps - warmup))))
    return out


# ---- model --------------------------------------------------------------------------------------
def load_backbone(dtype) -> VisionTransformer:
    sd = st.load(BACKBONE)
    arch = get_arch("fixture")
    m = VisionTransformer(arch)
    m.load_weights(sd)  # strict: the file's head is [10, D] and matches the arch; dropped below
    m = m.to(dtype).eval()
    del m.head
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def init_params(method: str, arch) -> dict:
    """Trainable tensors (float32), drawn from one generator (seed 0) in a fixed order."""
    g = torch.Generator().manual_seed(INIT_SEED)
    D, p, L, C, N = arch.embed_dim, arch.patch_size, arch.depth, NUM_CLASSES, N_PROMPTS
    v = math.sqrt(6.0 / (3 * p * p + D))
    params = {}
    if method in ("vpt-shallow", "vpt-deep"):
        params["prompt_embeddings"] = torch.empty(1, N, D).uniform_(-v, v, generator=g)
    if method == "vpt-deep":
        params["deep_prompt_embeddings"] = torch.empty(L - 1, N, D).uniform_(-v, v, generator=g)
    params["head.weight"] = torch.empty(C, D).normal_(0.0, math.sqrt(2.0 / C), generator=g)
    params["head.bias"] = torch.zeros(C)
    return params, v


def make_data(steps: int, arch):
    g = torch.Generator().manual_seed(DATA_SEED)
    S = arch.img_size
    xs, ys = [], []
    for _ in range(steps):
        x = torch.randn(BATCH, 3, S, S, generator=g)
        y = torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)
        xs.append(x.to(torch.float16).to(torch.float32))  # float16-exact inputs
        ys.append(y)
    return xs, ys


def forward(model: VisionTransformer, method: str, P: dict, x: torch.Tensor) -> torch.Tensor:
    h = model.embed(x)
    B = h.shape[0]
    if method in ("vpt-shallow", "vpt-deep"):
        h = torch.cat([h[:, :1], P["prompt_embeddings"].expand(B, -1, -1), h[:, 1:]], dim=1)
    for i, blk in enumerate(model.blocks):
        if method == "vpt-deep" and i >= 1:
            Pi = P["deep_prompt_embeddings"][i - 1].unsqueeze(0).expand(B, -1, -1)
            h = torch.cat([h[:, :1], Pi, h[:, 1 + N_PROMPTS:]], dim=1)  # replace, don't accumulate
        h = blk(h)
    cls = model.norm(h)[:, 0]
    return F.linear(cls, P["head.weight"], P["head.bias"])


def loss_fn(model, method, P, x, y):
    return F.cross_entropy(forward(model, method, P, x), y, reduction="mean")


# ---- training -----------------------------------------------------------------------------------
def train(method, init, xs, ys, lrs, dtype, use_torch_sgd=True):
    model = load_backbone(dtype)
    P = {k: v.to(dtype).clone().requires_grad_(True) for k, v in init.items()}
    decay = [P[k] for k in P if k not in NO_DECAY]
    nodecay = [P[k] for k in P if k in NO_DECAY]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": WEIGHT_DECAY},
                           {"params": nodecay, "weight_decay": 0.0}],
                          lr=0.0, momentum=MOMENTUM, dampening=0.0, nesterov=False)
    bufs = {}
    losses, grad0 = [], None
    for t, (x, y, lr) in enumerate(zip(xs, ys, lrs)):
        for p in P.values():
            p.grad = None
        loss = loss_fn(model, method, P, x.to(dtype), y)
        loss.backward()
        losses.append(loss.item())
        if t == 0:
            grad0 = {k: v.grad.detach().clone() for k, v in P.items()}
        if use_torch_sgd:
            for grp in opt.param_groups:
                grp["lr"] = lr
            opt.step()
        else:  # hand-written torch SGD semantics, used as a cross-check
            with torch.no_grad():
                for k, p in P.items():
                    gk = p.grad + (0.0 if k in NO_DECAY else WEIGHT_DECAY) * p
                    bufs[k] = gk.clone() if t == 0 else MOMENTUM * bufs[k] + gk
                    p -= lr * bufs[k]
    final = {k: v.detach().clone() for k, v in P.items()}
    return losses, grad0, final


def fd_check(method, init, x, y, grad0):
    """Central finite difference (float64) on a few elements of each trainable tensor."""
    model = load_backbone(torch.float64)
    P = {k: v.double().clone() for k, v in init.items()}
    eps = 1e-6
    worst = 0.0
    with torch.no_grad():
        for k in P:
            flat = P[k].view(-1)
            for idx in (0, flat.numel() // 2, flat.numel() - 1):
                old = flat[idx].item()
                flat[idx] = old + eps
                lp = loss_fn(model, method, P, x.double(), y).item()
                flat[idx] = old - eps
                lm = loss_fn(model, method, P, x.double(), y).item()
                flat[idx] = old
                fd = (lp - lm) / (2 * eps)
                an = grad0[k].view(-1)[idx].item()
                worst = max(worst, abs(fd - an) / max(1e-3, abs(an)))
    return worst


def save_mixed(path, tensors, f16_names, metadata):
    """safetensors writer with a per-tensor float dtype (F16 for names in f16_names, else F32)."""
    header, chunks, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        dt, raw = st._encode(t, "F16" if name in f16_names else "F32")
        if dt == "F16":
            assert torch.equal(t.to(torch.float16).to(torch.float32), t.to(torch.float32)), f"{name} not f16-exact"
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}, **header}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", required=True, choices=METHODS)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--lr", type=float, default=0.5, help="VPT base lr before the lr*batch/256 rescale")
    args = ap.parse_args()
    torch.manual_seed(0)

    arch = get_arch("fixture")
    init, bound = init_params(args.method, arch)
    xs, ys = make_data(args.steps, arch)
    base_lr = args.lr * BATCH / 256
    lrs = lr_schedule(base_lr, args.steps)

    losses, grad0, final = train(args.method, init, xs, ys, lrs, torch.float64)

    # ---- checks ---------------------------------------------------------------------------------
    losses_b, _, final_b = train(args.method, init, xs, ys, lrs, torch.float64, use_torch_sgd=False)
    sgd_d = max((final[k] - final_b[k]).abs().max().item() for k in final)
    assert sgd_d < 1e-12 and max(abs(a - b) for a, b in zip(losses, losses_b)) < 1e-12, sgd_d
    fd = fd_check(args.method, init, xs[0], ys[0], grad0)
    assert fd < 1e-5, f"finite-difference check failed: {fd}"
    losses32, grad0_32, final32 = train(args.method, init, xs, ys, lrs, torch.float32)
    d_loss32 = max(abs(a - b) for a, b in zip(losses, losses32))
    d_final32 = max((final32[k].double() - final[k]).abs().max().item() for k in final)
    d_grad32 = max((grad0_32[k].double() - grad0[k]).abs().max().item() / grad0[k].abs().max().item()
                   for k in grad0)
    moved = {k: (final[k] - init[k].double()).abs().max().item() for k in final}
    # Descent sanity. The labels are random and every step sees a new batch, so gradients of different batches
    # are nearly uncorrelated and `loss` (batch t before update t) need not fall. The same recipe run on batch 0
    # repeated must fit it: its loss must fall (not stored; reported in the metadata).
    fixed, _, _ = train(args.method, init, [xs[0]] * args.steps, [ys[0]] * args.steps, lrs, torch.float64)
    assert fixed[-1] < fixed[0] - 0.1, f"recipe does not fit a single repeated batch: {fixed}"

    # ---- write ----------------------------------------------------------------------------------
    out = {}
    for k, v in init.items():
        out[f"init.{k}"] = v
        out[f"final.{k}"] = final[k]
        out[f"grad0.{k}"] = grad0[k]
    for t in range(args.steps):
        out[f"x.{t}"] = xs[t]
        out[f"y.{t}"] = ys[t].to(torch.float32)
    out["lr"] = torch.tensor(lrs, dtype=torch.float64)
    out["loss"] = torch.tensor(losses, dtype=torch.float64)
    out = {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}
    f16 = {f"x.{t}" for t in range(args.steps)}
    cmd = "/usr/bin/python3 tools/reference/train_ref.py " + " ".join(
        a if a.startswith("--") or " " not in a else repr(a) for a in sys.argv[1:])
    meta = {
        "method": args.method,
        "backbone": "test/fixtures/vit_fixture.safetensors (arch fixture: img 32, patch 8, D 96, depth 3, "
                    "heads 3); frozen, eval; its head dropped",
        "N": N_PROMPTS,
        "C": NUM_CLASSES,
        "batch": BATCH,
        "steps": args.steps,
        "trainable": ",".join(init),
        "prompt_insert": "[CLS, P, patches], no pos embed on prompts" if args.method != "linear" else "none",
        "deep": "before block i>=1: h = cat(h[:, :1], deep_prompt_embeddings[i-1], h[:, 1+N:]) (replace)"
                if args.method == "vpt-deep" else "no",
        "prompt_dropout": "0",
        "pool": "final norm -> token 0 (CLS) -> head Linear(D, C)",
        "loss": "softmax cross-entropy, mean over batch",
        "optimizer": "torch.optim.SGD",
        "momentum": MOMENTUM,
        "dampening": 0,
        "nesterov": "false",
        "weight_decay": WEIGHT_DECAY,
        "weight_decay_exclude": ",".join(NO_DECAY),
        "sgd_update": "g = grad + wd*p; buf = g if t == 0 else momentum*buf + g; p -= lr[t]*buf",
        "base_lr_unscaled": args.lr,
        "base_lr": base_lr,
        "lr_schedule": f"base_lr = lr_unscaled*batch/256; t < {WARMUP_STEPS}: base_lr*t/{WARMUP_STEPS}; else "
                       f"base_lr*0.5*(1+cos(pi*(t-{WARMUP_STEPS})/(steps-{WARMUP_STEPS}))); stored in `lr`",
        "lr_bumped": "no" if args.lr == 0.5 else f"yes: unscaled base lr {args.lr} instead of 0.5",
        "init": f"generator seed {INIT_SEED}, in order: prompt_embeddings U(-v,v), deep_prompt_embeddings U(-v,v), "
                f"head.weight N(0, 2/C), head.bias 0; v = sqrt(6/(3*p*p+D)) = {bound!r}",
        "data": f"generator seed {DATA_SEED}; per step t: x = randn(batch,3,32,32) rounded to float16 (stored F16, "
                f"f16-exact), then y = randint(0, C, (batch,)) stored as F32",
        "loss_tensor": "loss[t] = loss of batch t before update t (distinct random-label batches: not expected "
                       "to fall monotonically)",
        "sanity_fixed_batch_loss": "same recipe, batch 0 every step: " + " ".join(f"{v:.4f}" for v in fixed),
        "grad0": "raw d loss / d param at step 0 (before weight decay and momentum)",
        "computed_in": "float64 (float32 stored inputs/init cast up); stored float32 except x.* (F16, exact)",
        "float32_torch_vs_ref": f"max|dloss|={d_loss32:.2e} max|dfinal|={d_final32:.2e} "
                                f"grad0 rel={d_grad32:.2e}",
        "torch": torch.__version__,
        "command": cmd,
        "generator": "tools/reference/train_ref.py",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_mixed(args.out, out, f16, meta)

    back, meta_back = st.load(args.out, with_metadata=True)
    assert set(back) == set(out) and all(torch.equal(back[k], out[k]) for k in out)
    assert meta_back["method"] == args.method

    print(f"{args.method}: {args.out} ({os.path.getsize(args.out)} bytes)")
    print("  lr   " + " ".join(f"{v:.6f}" for v in lrs))
    print("  loss " + " ".join(f"{v:.6f}" for v in losses))
    print("  same recipe on batch 0 repeated: " + " ".join(f"{v:.6f}" for v in fixed))
    print(f"  max|final - init|: " + ", ".join(f"{k}={v:.3e}" for k, v in moved.items()))
    print(f"  checks: hand SGD vs torch.optim.SGD max|d|={sgd_d:.1e}; grad0 finite-diff rel err={fd:.1e}; "
          f"float32 torch vs float64 ref: loss {d_loss32:.1e}, final {d_final32:.1e}, grad0 rel {d_grad32:.1e}")


if __name__ == "__main__":
    main()
