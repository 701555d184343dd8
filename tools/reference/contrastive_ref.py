#!/usr/bin/python3
"""Reference trajectory for contrastive (CLIP) pretraining: full-parameter AdamW steps of a tiny CLIP.

Usage:
  /usr/bin/python3 tools/reference/contrastive_ref.py --out test/fixtures/contrastive_ref.safetensors [--steps 3]

Written from the description of the objective in compiler/pretrain/contrastive.ts (its docstring),
not from its code; the CLIP towers are tools/reference/clip_ref.py (the independent CLIP used for
the parity fixtures), with exact GELU.

What it does (deterministic, CPU, float64 math):
  * model: clip_ref's fixture CLIP (image 32 px, patch 8, width 32, 2 blocks; text vocabulary 518,
    width 16, 2 blocks; embedding 24), OpenAI names, random weights (clip_ref.random_weights(seed 3)),
    logit_scale = ln(1/0.07). Every tensor trains.
  * captions: K = 4 caption keys, one sentence each (the hand-made vocabulary), tokenized with
    clip_ref.bpe_encode, padded with 0 to 1 + the last EOT position of any of them.
  * data (torch.Generator seed 1): x_t = randn(6, 3, 32, 32) rounded to float16; key labels y_t with
    repeats (several images share a caption).
  * loss: img = normalize(encode_image(x)), txt = normalize(encode_text(ids[y])), Z = exp(s)·img·txtᵀ
    [6, 6]; targets T[i, j] = 1/n_i when y_i = y_j (n_i = rows with key y_i), else 0;
    loss = −(Σ T·log_softmax(Z, rows) + Σ T·log_softmax(Zᵀ, rows)) / (2·6).
  * optimiser: torch.optim.AdamW(betas (0.9, 0.999), eps 1e-8), weight decay 0.1 except biases,
    LayerNorm weights, positional/class embeddings of the image tower and logit_scale.

Stored: init.<openai name>, final.<openai name>, grad0.<openai name>, x.<t>, y.<t>, ids [K, L], lr, loss.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref  # noqa: E402
from safetensors_io import save  # noqa: E402

CAPTIONS = ["a cat", "a dog", "a photo of a cat", "the dog on a mat"]
LABELS = [[0, 1, 0, 2, 3, 1], [2, 2, 1, 3, 0, 0], [3, 1, 1, 1, 2, 0]]
WEIGHT_DECAY = 0.1
ACT = "gelu"


def no_decay(name: str) -> bool:
    return (
        name.endswith("bias")
        or ".ln_" in name or name.startswith("ln_") or "ln_pre" in name or "ln_post" in name or name.startswith("ln_final")
        or name in ("visual.class_embedding", "visual.positional_embedding", "logit_scale")
    )


def loss_fn(P, x, y, ids):
    img = clip_ref.normalize(clip_ref.encode_image(P, x, ACT))
    txt = clip_ref.normalize(clip_ref.encode_text(P, ids[y], ACT))
    z = P["logit_scale"].exp() * img @ txt.T
    same = (y[:, None] == y[None, :]).to(z.dtype)
    t = same / same.sum(1, keepdim=True)
    B = x.shape[0]
    return -((t * torch.log_softmax(z, 1)).sum() + (t * torch.log_softmax(z.T, 1)).sum()) / (2 * B)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lrs", default="0.002,0.003,0.001")
    a = ap.parse_args()
    lrs = [float(v) for v in a.lrs.split(",")][: a.steps]
    init = clip_ref.random_weights(3)
    init["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    toks = [clip_ref.bpe_encode(c) for c in CAPTIONS]
    L = max(len(t) for t in toks)
    ids = torch.zeros(len(toks), L, dtype=torch.long)
    for i, t in enumerate(toks):
        ids[i, : len(t)] = torch.tensor(t)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(6, 3, 32, 32, generator=g).half().float() for _ in range(a.steps)]
    ys = [torch.tensor(LABELS[t % len(LABELS)]) for t in range(a.steps)]
    P = {k: v.to(torch.float64).clone().requires_grad_(True) for k, v in init.items()}
    decay = [P[k] for k in P if not no_decay(k)]
    nodecay = [P[k] for k in P if no_decay(k)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": nodecay, "weight_decay": 0.0}], lr=0.0, betas=(0.9, 0.999), eps=1e-8)
    losses, grad0 = [], None
    for t in range(a.steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(P, xs[t].to(torch.float64), ys[t], ids)
        loss.backward()
        losses.append(loss.item())
        if t == 0:
            grad0 = {k: v.grad.detach().clone() for k, v in P.items()}
        for grp in opt.param_groups:
            grp["lr"] = lrs[t]
        opt.step()
    out = {}
    for k in init:
        out[f"init.{k}"] = init[k].float()
        out[f"final.{k}"] = P[k].detach().float()
        out[f"grad0.{k}"] = grad0[k].float()
    for t in range(a.steps):
        out[f"x.{t}"] = xs[t].half()
        out[f"y.{t}"] = ys[t].float()
    out["ids"] = ids.float()
    out["lr"] = torch.tensor(lrs, dtype=torch.float32)
    out["loss"] = torch.tensor(losses, dtype=torch.float32)
    save(a.out, out, metadata={"script": "tools/reference/contrastive_ref.py", "torch": torch.__version__, "steps": str(a.steps)})
    print(f"wrote {a.out}: {a.steps} steps, losses {', '.join(f'{v:.6f}' for v in losses)}, {sum(v.numel() for v in init.values())} values")


if __name__ == "__main__":
    main()
