#!/usr/bin/python3
"""Reference trajectory for `edgeprompt pretrain`: full-parameter AdamW steps on a two-source mixture.

Usage:
  /usr/bin/python3 tools/reference/pretrain_ref.py --out test/fixtures/pretrain_ref.safetensors [--steps 4]

Written from the description of the pretraining objective in compiler/pretrain/objective.ts and
method.ts (docstrings), not from their code; the ViT is tools/reference/vit_ref.py (timm semantics).

What it does (deterministic, CPU, float64 math):
  * model: a tiny ViT ("fixture" arch with img 16, patch 4, D 24, depth 2, heads 2), every tensor trained,
    initialised like timm (init_timm_like, torch.Generator seed 0), plus one linear head per source on
    the final-norm CLS token: heads.a [3, D] (source "a", 3 classes) and heads.b [2, D] (source "b", 2
    classes), N(0, 0.02^2), bias 0. The backbone's own `head` is unused.
  * data (torch.Generator seed 1): for t in 0..steps-1: x_t = randn(6, 3, 16, 16) rounded to float16 (stored
    F16, exact), global labels y_t in 0..4 (0..2 = source a's classes, 3..4 = source b's), drawn so every
    batch has rows of both sources.
  * loss: for each source s, cross_entropy(head_s(cls[rows_s]), y - offset_s, label_smoothing 0.1,
    reduction 'sum'), summed over sources and divided by the whole batch size (6); plus source a's
    patch-level term: a second head heads.a.patches [3, D] on every patch token (final norm, tokens 1..16)
    of a's rows, cross_entropy(z, patch label, reduction 'sum') * 0.5 / (6 * 16). Patch labels
    (generator seed 1, after the batch) are random classes 0..2 per patch of a's rows; stored as pt.<t>
    [6, 16] with -1 on rows of source b.
  * optimiser: torch.optim.AdamW(betas (0.9, 0.999), eps 1e-8), weight decay 0.05 except biases, LayerNorm
    weights, pos_embed and cls_token (timm's no-decay set), per-step lr from --lrs.

Stored: init.<name>, final.<name>, grad0.<name> (raw gradient of the step-0 loss), x.<t>, y.<t>, lr, loss.
Names: timm ViT names (patch_embed.proj.weight [D,3,p,p], ...) and heads.<s>.{weight,bias}.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save  # noqa: E402
from vit_ref import build  # noqa: E402

ARCH = dict(img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=2, num_classes=1)
SOURCES = [("a", 3), ("b", 2)]
SMOOTHING = 0.1
PATCH_WEIGHT = 0.5
GRID = ARCH["img_size"] // ARCH["patch_size"]
WEIGHT_DECAY = 0.05
BATCH = 6


def no_decay(name: str) -> bool:
    return name.endswith(".bias") or name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight" or name in ("pos_embed", "cls_token")


def init_params():
    g = torch.Generator().manual_seed(0)
    model = build("fixture", **ARCH).init_timm_like(g)
    P = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    D = ARCH["embed_dim"]
    for s, C in SOURCES:
        P[f"heads.{s}.weight"] = torch.empty(C, D).normal_(0.0, 0.02, generator=g)
        P[f"heads.{s}.bias"] = torch.zeros(C)
    P["heads.a.patches.weight"] = torch.empty(SOURCES[0][1], D).normal_(0.0, 0.02, generator=g)
    P["heads.a.patches.bias"] = torch.zeros(SOURCES[0][1])
    return P


def make_data(steps: int):
    g = torch.Generator().manual_seed(1)
    xs, ys, pts = [], [], []
    total = sum(C for _, C in SOURCES)
    for _ in range(steps):
        xs.append(torch.randn(BATCH, 3, ARCH["img_size"], ARCH["img_size"], generator=g).half().float())
        y = torch.randint(0, total, (BATCH,), generator=g)
        y[0], y[1] = 0, SOURCES[0][1]  # both sources in every batch
        ys.append(y)
        pt = torch.randint(0, SOURCES[0][1], (BATCH, GRID * GRID), generator=g)
        pt[y >= SOURCES[0][1]] = -1
        pts.append(pt)
    return xs, ys, pts


def functional_forward(P, x, y, pt):
    """The same loss with P as leaf tensors (the model is rebuilt around them each call)."""
    model = build("fixture", **ARCH).to(torch.float64)
    for name, _ in list(model.named_parameters()):
        if name.startswith("head."):
            continue
        parent = model
        *path, leaf = name.split(".")
        for part in path:
            parent = getattr(parent, part)
        delattr(parent, leaf)
        setattr(parent, leaf, P[name])
    tokens = model.forward_features(x)
    cls = tokens[:, 0]
    loss = x.new_zeros(())
    offset = 0
    for s, C in SOURCES:
        rows = (y >= offset) & (y < offset + C)
        z = F.linear(cls[rows], P[f"heads.{s}.weight"], P[f"heads.{s}.bias"])
        loss = loss + F.cross_entropy(z, y[rows] - offset, label_smoothing=SMOOTHING, reduction="sum")
        offset += C
    rows = pt[:, 0] >= 0
    zp = F.linear(tokens[rows, 1:], P["heads.a.patches.weight"], P["heads.a.patches.bias"])  # [Ba, G², 3]
    patch = F.cross_entropy(zp.reshape(-1, zp.shape[-1]), pt[rows].reshape(-1), reduction="sum")
    return loss / x.shape[0] + PATCH_WEIGHT * patch / (x.shape[0] * GRID * GRID)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--lrs", default="0.002,0.003,0.0025,0.001")
    a = ap.parse_args()
    torch.manual_seed(0)
    lrs = [float(v) for v in a.lrs.split(",")][: a.steps]
    init = init_params()
    xs, ys, pts = make_data(a.steps)
    P = {k: v.to(torch.float64).clone().requires_grad_(True) for k, v in init.items()}
    decay = [P[k] for k in P if not no_decay(k)]
    nodecay = [P[k] for k in P if no_decay(k)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": nodecay, "weight_decay": 0.0}], lr=0.0, betas=(0.9, 0.999), eps=1e-8)
    losses, grad0 = [], None
    for t, (x, y, pt, lr) in enumerate(zip(xs, ys, pts, lrs)):
        opt.zero_grad(set_to_none=True)
        loss = functional_forward(P, x.to(torch.float64), y, pt)
        loss.backward()
        losses.append(loss.item())
        if t == 0:
            grad0 = {k: v.grad.detach().clone() for k, v in P.items()}
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.step()
    out = {}
    for k in init:
        out[f"init.{k}"] = init[k].float()
        out[f"final.{k}"] = P[k].detach().float()
        out[f"grad0.{k}"] = grad0[k].float()
    for t in range(a.steps):
        out[f"x.{t}"] = xs[t].half()
        out[f"y.{t}"] = ys[t].float()
        out[f"pt.{t}"] = pts[t].float()
    out["lr"] = torch.tensor(lrs, dtype=torch.float32)
    out["loss"] = torch.tensor(losses, dtype=torch.float32)
    save(a.out, out, metadata={"script": "tools/reference/pretrain_ref.py", "torch": torch.__version__, "steps": str(a.steps)})
    print(f"wrote {a.out}: {a.steps} steps, losses {', '.join(f'{v:.6f}' for v in losses)}")


if __name__ == "__main__":
    main()
