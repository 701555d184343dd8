#!/usr/bin/python3
"""Pretrain EdgePrompt's shipped tiny backbone, `vit_micro_patch4_32`, on Fashion-MNIST classes 0-4.

One-time asset (issue 4, item 6). Written in PyTorch because the project's TypeScript trainer is not ready yet
and tfjs-wasm trains ~13x slower than PyTorch on the 2-core build machine; once issue 8's onnxruntime engine
lands, the project's own `full` method is the intended way to regenerate this file.

Model:  tools/reference/vit_ref.py `vit_micro_patch4_32` (timm VisionTransformer semantics and names;
        img 32, patch 4 -> 8x8 grid, D 96, depth 6, 3 heads, MLP ratio 4, LN eps 1e-6, erf GELU, 5 classes).
Data:   /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, classes 0-4
        (t-shirt/top, trouser, pullover, dress, coat). 28x28 grey -> zero-pad 2 px each side -> 32x32 (FMNIST
        background is 0, so the padding is exact), replicated to RGB, /255, then (x - 0.5) / 0.5 per channel.
Recipe: full model from scratch (init_timm_like), AdamW lr 1e-3 x batch/128, betas (0.9, 0.999), wd 0.05 on
        weight matrices only (no decay on biases, norms, pos_embed, cls_token), linear warmup over 1 epoch then
        cosine to 0 (per step), label smoothing 0.1, augmentation random crop (pad 2 with background + crop 32)
        and horizontal flip, batch 128 (last partial batch dropped), seed 0, deterministic, 2 threads.
Output: DIR/vit_micro_patch4_32.fmnist04.safetensors (F16, timm names, 5-class head, __metadata__) and
        DIR/vit_micro_patch4_32.fmnist04.json (the card). The test accuracy of the F16-rounded weights is
        measured by reloading the written file.

Usage:
  /usr/bin/python3 tools/pretrain/pretrain_backbone.py --measure            # time steps, suggest --epochs
  /usr/bin/python3 tools/pretrain/pretrain_backbone.py --epochs N [--out compiler/backbones/weights]
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shlex
import struct
import sys
import time

# libgomp's default busy-wait at barriers makes the 2 torch threads 2-3x slower when other processes share the
# 2 cores (measured here at load ~12); passive waiting does not change any numerics. Must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
import safetensors_io  # noqa: E402
from vit_ref import ARCHS, VisionTransformer  # noqa: E402

ARCH_NAME = "vit_micro_patch4_32"
DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = [0, 1, 2, 3, 4]
CLASS_NAMES = ["t-shirt/top", "trouser", "pullover", "dress", "coat"]
MEAN, STD = 0.5, 0.5
PAD = 2  # 28 -> 32
STEM = "vit_micro_patch4_32.fmnist04"


# ---------------------------------------------------------------------------------------------- data
def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, = struct.unpack(">I", buf[:4])
    ndim = magic & 0xFF
    if (magic >> 8) != 0x08:  # unsigned byte
        raise ValueError(f"{path}: not a ubyte idx file (magic {magic:#x})")
    dims = struct.unpack(">" + "I" * ndim, buf[4:4 + 4 * ndim])
    arr = np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size mismatch")
    return arr.reshape(dims)


def load_split(split: str):
    """-> images uint8 [N,32,32] (zero-padded 2 px), labels int64 [N] in 0..4 (classes 0-4 only)."""
    x = read_idx(os.path.join(DATA_DIR, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA_DIR, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
    keep = np.isin(y, CLASSES)
    x, y = x[keep], y[keep]
    remap = {c: i for i, c in enumerate(CLASSES)}
    y = np.array([remap[int(v)] for v in y], dtype=np.int64)
    x = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD)), mode="constant", constant_values=0)
    return torch.from_numpy(x.copy()), torch.from_numpy(y)


def to_input(x_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,32,32] -> float [B,3,32,32], /255 then (x - 0.5) / 0.5."""
    x = x_u8.to(torch.float32).div_(255.0)
    x = (x - MEAN) / STD
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def augment(x_u8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop (pad 2 with background 0, crop 32) + horizontal flip p=.5, on uint8 [B,32,32]."""
    B, H, W = x_u8.shape
    xp = F.pad(x_u8, (2, 2, 2, 2))  # constant 0 = FMNIST background
    oy = torch.randint(0, 5, (B,), generator=gen)
    ox = torch.randint(0, 5, (B,), generator=gen)
    flip = torch.rand(B, generator=gen) < 0.5
    ar = torch.arange(H)
    rows = (oy[:, None] + ar[None, :])  # [B,H]
    cols = (ox[:, None] + ar[None, :])  # [B,W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bidx = torch.arange(B)[:, None, None]
    return xp[bidx, rows[:, :, None], cols[:, None, :]]


# ---------------------------------------------------------------------------------------------- model/opt
def param_groups(model: torch.nn.Module, wd: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim <= 1 or name in ("pos_embed", "cls_token") or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(model, x_u8, y, batch=500):
    model.eval()
    correct = 0
    per_class = torch.zeros(len(CLASSES), dtype=torch.long)
    per_total = torch.zeros(len(CLASSES), dtype=torch.long)
    for i in range(0, len(y), batch):
        pred = model(to_input(x_u8[i:i + batch])).argmax(-1)
        yy = y[i:i + batch]
        ok = pred == yy
        correct += int(ok.sum())
        per_class += torch.bincount(yy[ok], minlength=len(CLASSES))
        per_total += torch.bincount(yy, minlength=len(CLASSES))
    model.train()
    return correct / len(y), (per_class.double() / per_total.double()).tolist()


def set_openblas_threads(n: int):
    """torch.set_num_threads does not reach the system OpenBLAS Debian's torch links; set its pool in-process."""
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


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "nproc": os.cpu_count(), "os": platform.platform()}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(REPO, "compiler", "backbones", "weights"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--base-lr", type=float, default=1e-3, help="lr at batch 128 (scaled linearly)")
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=1.0)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--measure", action="store_true", help="time training steps + one eval, suggest --epochs")
    ap.add_argument("--budget-min", type=float, default=25.0, help="wall-time budget used by --measure")
    args = ap.parse_args()
    if args.epochs is None and not args.measure:
        ap.error("give --epochs N (or --measure)")
    command = "/usr/bin/python3 " + " ".join(shlex.quote(a) for a in sys.argv)

    torch.set_num_threads(args.threads)
    blas_threads = set_openblas_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    t_load = time.time()
    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    print(f"data: train {tuple(xtr.shape)} test {tuple(xte.shape)} classes {CLASSES} "
          f"({time.time() - t_load:.1f}s); threads torch {torch.get_num_threads()} openblas {blas_threads}; "
          f"load {loadavg()}", flush=True)

    arch = ARCHS[ARCH_NAME]
    model = VisionTransformer(arch)
    g_init = torch.Generator().manual_seed(args.seed)
    model.init_timm_like(generator=g_init)
    n_params = sum(p.numel() for p in model.parameters())

    lr = args.base_lr * args.batch / 128
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = len(ytr) // args.batch
    g_data = torch.Generator().manual_seed(args.seed + 1)

    def train_step(xb_u8, yb, lr_now):
        for grp in opt.param_groups:
            grp["lr"] = lr_now
        x = to_input(augment(xb_u8, g_data))
        loss = F.cross_entropy(model(x), yb, label_smoothing=args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    if args.measure:
        perm = torch.randperm(len(ytr), generator=g_data)
        n_warm, n_meas = 3, 15
        times = []
        for s in range(n_warm + n_meas):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            t0 = time.time()
            train_step(xtr[idx], ytr[idx], lr * 0.1)
            if s >= n_warm:
                times.append(time.time() - t0)
        step_s = float(np.median(times))
        t0 = time.time()
        evaluate(model, xte, yte)
        eval_s = time.time() - t0
        epoch_s = steps_per_epoch * step_s + eval_s
        budget = args.budget_min * 60 - 60  # data load, final F16 eval, writing
        print(json.dumps({"params": n_params, "step_s_median": round(step_s, 4),
                          "step_s_all": [round(t, 3) for t in times],
                          "images_per_s": round(args.batch / step_s, 1), "eval_s": round(eval_s, 2),
                          "steps_per_epoch": steps_per_epoch, "epoch_s_est": round(epoch_s, 1),
                          "suggested_epochs": max(1, int(budget // epoch_s)), "budget_min": args.budget_min,
                          "load": loadavg()}), flush=True)
        return

    total_steps = steps_per_epoch * args.epochs
    warmup_steps = int(round(args.warmup_epochs * steps_per_epoch))
    print(f"model {ARCH_NAME}: {n_params} params; epochs {args.epochs} x {steps_per_epoch} steps "
          f"(batch {args.batch}, lr {lr:g}, warmup {warmup_steps} steps)", flush=True)

    history = []
    best = (-1.0, -1)
    t_train0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        perm = torch.randperm(len(ytr), generator=g_data)
        t_ep = time.time()
        loss_sum, n_seen = 0.0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            loss = train_step(xtr[idx], ytr[idx], lr_at(step, total_steps, warmup_steps, lr))
            step += 1
            loss_sum += loss
            n_seen += len(idx)
            if (s + 1) % 50 == 0:
                el = time.time() - t_ep
                print(f"  epoch {epoch + 1}/{args.epochs} step {s + 1}/{steps_per_epoch} "
                      f"loss {loss_sum / (s + 1):.4f} {n_seen / el:.1f} img/s "
                      f"elapsed {time.time() - t_train0:.0f}s load {loadavg()}", flush=True)
        train_s = time.time() - t_ep
        acc, per_class = evaluate(model, xte, yte)
        if acc > best[0]:
            best = (acc, epoch + 1)
        rec = {"epoch": epoch + 1, "train_loss": round(loss_sum / steps_per_epoch, 5),
               "images_per_s": round(n_seen / train_s, 1), "test_top1": round(acc, 5),
               "per_class": [round(v, 4) for v in per_class], "epoch_s": round(time.time() - t_ep, 1),
               "lr_end": lr_at(step - 1, total_steps, warmup_steps, lr), "load": loadavg()}
        history.append(rec)
        print(f"epoch {epoch + 1}/{args.epochs} loss {rec['train_loss']:.4f} {rec['images_per_s']} img/s "
              f"test top-1 {acc * 100:.2f}% (best {best[0] * 100:.2f}% @ {best[1]}) "
              f"epoch {rec['epoch_s']}s total {time.time() - t_train0:.0f}s load {rec['load']}", flush=True)
    train_time_s = time.time() - t_train0
    final_acc, final_per_class = evaluate(model, xte, yte)

    # ---- write F16 safetensors, reload, re-evaluate
    os.makedirs(args.out, exist_ok=True)
    st_path = os.path.join(args.out, STEM + ".safetensors")
    card_path = os.path.join(args.out, STEM + ".json")
    machine = machine_info()
    recipe = {
        "init": "init_timm_like (trunc normal std .02 on weights/pos/cls, zero biases, LN 1/0), seed %d" % args.seed,
        "optimizer": "AdamW betas (0.9, 0.999) eps 1e-8",
        "lr": lr, "base_lr_at_batch_128": args.base_lr, "batch": args.batch,
        "weight_decay": args.wd, "no_weight_decay": "biases, LayerNorm weights, pos_embed, cls_token",
        "schedule": f"linear warmup {args.warmup_epochs:g} epoch ({warmup_steps} steps) then cosine to 0, per step",
        "label_smoothing": args.label_smoothing,
        "augmentation": "random crop (pad 2 px with background 0, crop 32) + horizontal flip p 0.5",
        "epochs": args.epochs, "steps": total_steps, "drop_last": True,
        "seed": args.seed, "deterministic": True, "threads": args.threads, "precision": "float32",
    }
    preprocessing = {
        "input": "Fashion-MNIST 28x28 uint8 grey",
        "pad": "zero-pad 2 px each side -> 32x32 (background is 0, so exact)",
        "channels": "grey replicated to 3 RGB channels",
        "scale": "/255 -> [0,1]",
        "mean": [MEAN] * 3, "std": [STD] * 3, "normalisation": "Inception (x - 0.5) / 0.5",
    }
    meta = {
        "format": "pt", "arch": ARCH_NAME, **arch.metadata(),
        "ln_eps": "1e-6", "gelu": "erf", "qkv_bias": "True", "class_token": "True", "global_pool": "token",
        "mean": json.dumps([MEAN] * 3), "std": json.dumps([STD] * 3),
        "dataset": "fashion-mnist", "classes": json.dumps(CLASSES), "class_names": json.dumps(CLASS_NAMES),
        "recipe": json.dumps(recipe, separators=(",", ":")),
        "test_top1_fp32": f"{final_acc:.5f}",
        "torch_version": torch.__version__, "command": command, "dtype": "F16",
    }
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # metadata includes the F16 accuracy: write once to measure, then rewrite with it (same tensor bytes).
    safetensors_io.save(st_path, sd, meta, dtype="F16")
    sd16 = safetensors_io.load(st_path)
    m16 = VisionTransformer(arch)
    m16.load_weights(sd16, strict=True)
    acc16, per_class16 = evaluate(m16, xte, yte)
    max_round_err = max(float((sd[k].float() - sd16[k]).abs().max()) for k in sd)
    meta["test_top1_fp16"] = f"{acc16:.5f}"
    safetensors_io.save(st_path, sd, meta, dtype="F16")
    size = os.path.getsize(st_path)
    print(f"wrote {st_path} ({size} bytes); test top-1 fp32 {final_acc * 100:.2f}% fp16 {acc16 * 100:.2f}% "
          f"(max |fp32-fp16| weight {max_round_err:.2e})", flush=True)

    card = {
        "name": STEM,
        "file": os.path.basename(st_path),
        "arch": {"name": ARCH_NAME, **{k: v for k, v in arch.__dict__.items()}, "grid": arch.grid,
                 "tokens": 1 + arch.grid * arch.grid, "ln_eps": 1e-6, "gelu": "erf (exact)",
                 "params": n_params, "names": "timm VisionTransformer state-dict names, 5-class head included"},
        "weights": {"dtype": "F16", "bytes": size,
                    "max_abs_rounding_error": max_round_err},
        "data": {"dataset": "Fashion-MNIST (Debian dataset-fashion-mnist)", "dir": DATA_DIR,
                 "classes": CLASSES, "class_names": CLASS_NAMES,
                 "train_images": int(len(ytr)), "test_images": int(len(yte)),
                 "train_split": "train-*-ubyte.gz filtered to classes 0-4",
                 "test_split": "t10k-*-ubyte.gz filtered to classes 0-4 (never trained on)"},
        "preprocessing": preprocessing,
        "recipe": recipe,
        "epochs": args.epochs,
        "accuracy": {"metric": "top-1 on t10k, classes 0-4",
                     "final_fp32": round(final_acc, 5), "best_fp32": round(best[0], 5), "best_epoch": best[1],
                     "shipped_fp16": round(acc16, 5),
                     "per_class_fp16": dict(zip(CLASS_NAMES, [round(v, 4) for v in per_class16]))},
        "history": history,
        "train_time_s": round(train_time_s, 1),
        "machine": {**machine, "torch": torch.__version__, "torch_threads": args.threads,
                    "openblas_threads": blas_threads,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "note": "shared machine: other processes (node benchmarks/tests) ran alongside; "
                            "see per-epoch load averages in history"},
        "command": command,
        "why_pytorch": ("Issue 4 item 6 allows a PyTorch script under tools/ for this one-time asset. The project's "
                        "TypeScript trainer is not ready, and tfjs-wasm trains about 13x slower than PyTorch on "
                        "this 2-core machine, so the project's own `full` method could not pretrain it in "
                        "reasonable time. Once issue 8's onnxruntime engine lands, `full` is the intended way to "
                        "regenerate this file. The model is tools/reference/vit_ref.py, the independent "
                        "reference with timm semantics."),
    }
    with open(card_path, "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"wrote {card_path}", flush=True)


if __name__ == "__main__":
    main()
