#!/usr/bin/python3
"""PyTorch CPU baseline for the VPT-shallow train step (and forward), to compare with the TF.js trainer.

Usage:
  /usr/bin/python3 tools/reference/train_step_bench.py --arch vit_tiny_patch16_224 --batch 32 --threads 2 \
      --prompts 50 --steps 5 --warmup 2 [--mode train|forward] [--classes 1000]

train:   frozen random-weight backbone (requires_grad False, eval mode), N shallow prompt tokens inserted after
         CLS (trainable), trainable linear head; one step = forward + cross-entropy + backward (grads only reach
         the prompts and the head) + SGD(momentum .9) update of prompts and head.
forward: the same forward (prompts included) under torch.no_grad().
Prints one JSON line. Thread count is set with torch.set_num_threads (this machine defaults to 1);
no environment variables are changed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vit_ref import ARCHS, VisionTransformer  # noqa: E402


def blas_name() -> str:
    """Which BLAS shared library got mapped into this process (informational)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1].rsplit("/", 2)[-2] + "/" + line.split()[-1].rsplit("/", 1)[-1]
                    for line in f if "blas" in line or "mkl_" in line}
        return ",".join(sorted(libs)) or ("mkl" if torch.backends.mkl.is_available() else "unknown")
    except OSError:
        return "unknown"


def set_openblas_threads(n: int):
    """If OpenBLAS is loaded, set its pthread pool size in-process (no env vars). Returns the new count or None.
    torch.set_num_threads does not reach a system OpenBLAS, which otherwise uses one thread per core and
    oversubscribes the cores together with torch's OpenMP pool."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "libopenblas" in line})
        if not libs:
            return None
        lib = ctypes.CDLL(libs[0])
        lib.openblas_set_num_threads(int(n))
        return int(lib.openblas_get_num_threads())
    except (OSError, AttributeError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="vit_tiny_patch16_224", choices=sorted(ARCHS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--classes", type=int, default=None, help="head size (default: the arch's, 1000)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mode", choices=["train", "forward"], default="train")
    ap.add_argument("--deep", action="store_true", help="VPT-deep: a fresh prompt set before every block (replaced, not accumulated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OpenBLAS pool size if OpenBLAS is the BLAS (default: same as --threads; 0 = leave as found)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    _ = torch.randn(64, 64) @ torch.randn(64, 64)  # make sure the BLAS library is loaded
    bt = args.threads if args.blas_threads is None else args.blas_threads
    blas_threads = set_openblas_threads(bt) if bt > 0 else None
    torch.manual_seed(args.seed)
    arch = ARCHS[args.arch]
    model = VisionTransformer(arch).init_timm_like(torch.Generator().manual_seed(args.seed)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    C = args.classes or arch.num_classes
    D = arch.embed_dim
    head = torch.nn.Linear(D, C)
    bound = (6.0 / (3 * arch.patch_size ** 2 + D)) ** 0.5  # VPT prompt init
    layers = arch.depth if args.deep else 1
    prompts = torch.nn.Parameter(torch.empty(layers, args.prompts, D).uniform_(-bound, bound)) if args.prompts else None

    def features(x):
        if not args.deep or prompts is None:
            return model.forward_features(x, prompts)
        h = model.embed(x)
        B, N = h.shape[0], prompts.shape[1]
        h = torch.cat([h[:, :1], prompts[0:1].expand(B, -1, -1), h[:, 1:]], dim=1)
        for i, blk in enumerate(model.blocks):
            if i > 0:
                h = torch.cat([h[:, :1], prompts[i:i + 1].expand(B, -1, -1), h[:, 1 + N:]], dim=1)
            h = blk(h)
        return model.norm(h)
    params = list(head.parameters()) + ([prompts] if prompts is not None else [])
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    x = torch.randn(args.batch, 3, arch.img_size, arch.img_size)
    y = torch.randint(0, C, (args.batch,))

    def train_step():
        opt.zero_grad(set_to_none=True)
        feats = features(x)
        loss = F.cross_entropy(head(feats[:, 0]), y)
        loss.backward()
        opt.step()
        return loss.item()

    def fwd_step():
        with torch.no_grad():
            return head(features(x)[:, 0]).sum().item()

    step = train_step if args.mode == "train" else fwd_step
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if args.mode == "train":
        assert model.blocks[0].attn.qkv.weight.grad is None
        assert head.weight.grad is not None and (prompts is None or prompts.grad is not None)
    med = statistics.median(times)
    print(json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "arch": args.arch, "mode": args.mode,
        "deep": args.deep, "batch": args.batch, "threads": torch.get_num_threads(), "prompts": args.prompts, "classes": C,
        "tokens": 1 + args.prompts + arch.grid ** 2, "steps": args.steps, "warmup": args.warmup,
        "images_per_s": round(args.batch / med, 3), "step_ms_median": round(med * 1e3, 2),
        "step_ms_all": [round(t * 1e3, 1) for t in times],
        "blas": blas_name(), "blas_threads": blas_threads,
        "cpu_count": os.cpu_count(), "loadavg_1m": os.getloadavg()[0],
    }))


if __name__ == "__main__":
    main()
