#!/usr/bin/python3
"""Full reference training run on a job dumped by bench/reference-transfer.ts.

Usage: /usr/bin/python3 tools/reference/train_full.py DIR

Written from docs/spec/ (vp.md, vpt.md, spt.md, da-vpt.md, sa2vp.md, linear-full.md) and the reference modules
(vit_ref.py, method_vp.py, method_sa2vp.py, method_da_vpt.py), not from the TypeScript trainer. DIR holds (see tools/reference/README.md):
  job.json          method, options, arch, backbone weights, recipe, per-step lr and weight decay (ours)
  init.safetensors  the trainable tensors before step 0
  data.safetensors  train_x/train_y + order [steps,B], or batch_x [steps,B,3,S,S]; batch_y; val_x, val_y
The same init is trained on the same batches in the same order with the recipe below, in float32, CPU:
  * frozen backbone in eval mode; VPT's prompt dropout uses the masks our engine fed (mask.<k>), none at eval;
  * loss: softmax cross-entropy (label smoothing from the recipe), mean over the batch;
  * SGD (torch.optim.SGD, momentum, dampening 0) or AdamW (torch.optim.AdamW, eps 1e-8), one param group
    per tensor with the method's weight decay (recomputed here from docs/spec/ and checked against the dump);
  * lr: base = lr·batch/256 when the recipe scales it (VPT), warmup linear from 0 then cosine to 0, stepped
    per epoch (VPT's WarmupCosineSchedule) or per optimiser step (AdamW recipes); recomputed and checked;
  * after every epoch: validation top-1 over val_x.
Writes DIR/ref.json and prints it as the last line: {"epochs": [{"trainLoss", "valTop1"}], "stepLoss": [...]}.
"""
from __future__ import annotations

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402
from vit_ref import VisionTransformer, get_arch  # noqa: E402
import method_sa2vp as sa2vp_ref  # noqa: E402
import method_da_vpt as da_ref  # noqa: E402

PADS = ("pad_up", "pad_down", "pad_left", "pad_right")
HEAD = ("head.weight", "head.bias")


# ---- forward per method -----------------------------------------------------------------------------
def vpt_logits(model, P, x, n_prompts: int, deep: bool, masks=None):
    """docs/spec/vpt.md "Forward": [CLS, dropout(P0), patches], no pos embed on prompts; deep: before block i>=1 the
    prompt slots are replaced by dropout(P_i). `masks` (training only): the dropout masks, already scaled by
    1/(1-rate), for P0, P1, ... in that order, each [1|B, N, D] (broadcast over the batch when 1)."""
    drop = (lambda t, k: t * masks[k]) if masks else (lambda t, k: t)  # noqa: E731
    h = model.embed(x)  # [B, 1+G², D]
    B = h.shape[0]
    h = torch.cat([h[:, :1], drop(P["prompt_embeddings"].expand(B, -1, -1), 0), h[:, 1:]], dim=1)
    deep_p = P.get("deep_prompt_embeddings") if deep else None
    for i, blk in enumerate(model.blocks):
        if deep_p is not None and 1 <= i <= deep_p.shape[0]:
            h = torch.cat([h[:, :1], drop(deep_p[i - 1 : i].expand(B, -1, -1), i), h[:, 1 + n_prompts :]], dim=1)
        h = blk(h)
    return F.linear(model.norm(h)[:, 0], P["head.weight"], P["head.bias"])


def frame(P, S: int, p: int):
    """VP's PadPrompter frame [1,3,S,S]: the four strips around a zero (S-2p)² centre (docs/spec/vp.md "Tensors")."""
    mid = torch.cat([P["pad_left"], torch.zeros(1, 3, S - 2 * p, S - 2 * p), P["pad_right"]], dim=3)
    return torch.cat([P["pad_up"], mid, P["pad_down"]], dim=2)


def vp_logits(model, P, x, outer: bool, p: int, antialias: bool):
    """Inner: x' = x_norm + frame. Outer (docs/spec/vp.md "Forward"): the image shrunk to (S-2p)², zero-padded, + frame.
    x is already normalised; the bilinear shrink's taps sum to 1, so shrinking the normalised image equals
    normalising the shrunk one, and the zero pad + δ of method_vp.outer_input is exactly P on the frame."""
    S = x.shape[-1]
    if outer:
        small = F.interpolate(x, size=(S - 2 * p, S - 2 * p), mode="bilinear", align_corners=False, antialias=antialias)
        x = F.pad(small, (p, p, p, p), value=0.0)
    feats = model.forward_features(x + frame(P, S, p))
    return F.linear(feats[:, 0], P["head.weight"], P["head.bias"])


def make_forward(job, model):
    m, o = job["method"], job["options"]
    if m in ("linear", "full"):
        return lambda P, x: F.linear(model.forward_features(x)[:, 0], P["head.weight"], P["head.bias"])
    if m in ("vpt-shallow", "vpt-deep", "spt-shallow", "spt-deep"):
        return lambda P, x, masks=None: vpt_logits(model, P, x, o["prompts"], m.endswith("deep"), masks)
    if m in ("vp-inner", "vp-outer"):
        p = o.get("padSize") or max(1, round(30 * job["imgSize"] / 224))
        return lambda P, x: vp_logits(model, P, x, m == "vp-outer", p, o.get("antialias", True))
    if m == "sa2vp":
        # docs/spec/sa2vp.md via method_sa2vp.sa2vp_forward (its b2p layers and add scale are module settings);
        # b2p default {0, L/3, 2L/3}, the official {0, 4, 8} of 12 scaled to depth L. Dropout: run with 0.
        if o.get("dropout", 0) != 0:
            raise SystemExit(f"sa2vp: dropout {o['dropout']} in the dump; run the variant with dropout=0")
        L = model.arch.depth
        sa2vp_ref.B2P = o.get("b2pLayers") or sorted({0, round(L / 3), round(2 * L / 3)})
        sa2vp_ref.ADD_SCALE = o["addScale"]
        return lambda P, x: sa2vp_ref.sa2vp_forward(model, P, x)  # (logits, logits_p)
    if m in ("da-vpt", "da-vpt-bias"):
        # docs/spec/da-vpt.md via method_da_vpt.da_vpt (its proxy blocks, p_len and loss weights are module
        # settings); proxy blocks default to the last one; p_len = min(proxyPrompts, C).
        if o.get("dropout", 0) != 0:
            raise SystemExit(f"{m}: dropout {o['dropout']} in the dump; run the variant with dropout=0")
        L = model.arch.depth
        da_ref.START = o.get("proxyStart", L - 1)
        da_ref.END = o.get("proxyEnd", L - 1)
        da_ref.P_LEN = min(o["proxyPrompts"], job["numClasses"])
        da_ref.W_VPT, da_ref.W_CLS = o["vptLossWeight"], o["clsLossWeight"]

        def run(P, x, y=None, pos=None):
            model.head.weight, model.head.bias = P["head.weight"], P["head.bias"]
            other = P.get("other_prompt_tokens")
            if y is None:  # eval: logits only (labels and mapping do not change them)
                y, mapping = torch.zeros(x.shape[0], dtype=torch.long), torch.zeros(job["numClasses"], dtype=torch.long)
            else:  # the class→proxy mapping of this batch, from our per-batch one-hot proxy_mask [B, P]
                mapping = torch.zeros(job["numClasses"], dtype=torch.long)
                mapping[y] = pos.argmax(1)
                assert torch.equal(F.one_hot(mapping[y], da_ref.P_LEN).to(pos.dtype), pos), "proxy_mask is not one-hot of a class mapping"
            logits, ce, da = da_ref.da_vpt(model, x, y, mapping, P["proxy_prompt_tokens"], other, o["vptNorm"])
            return logits, ce + da
        return run
    raise SystemExit(f"train_full.py: method {m} is not implemented here")


def loss_fn(job, out, y):
    """Softmax CE (label smoothing from the recipe); SA2VP (sa2vp.md "Loss"): (1-w)·CE(logits) + w·CE(logits_p)."""
    ce = lambda z: F.cross_entropy(z, y, label_smoothing=job["labelSmoothing"])  # noqa: E731
    if job["method"].startswith("da-vpt"):
        return out[1]  # CE + L_DA, computed by da_vpt (da-vpt.md "Loss")
    if isinstance(out, tuple):
        w = job["options"]["promptLossWeight"]
        return (1 - w) * ce(out[0]) + w * ce(out[1])
    return ce(out)


def weight_decay(job, name: str, shape) -> float:
    """Per-tensor weight decay from docs/spec/: VPT/VP (vpt.md "Recipe"): all but the head bias; SPT (spt.md "Recipe"): prompts
    the recipe's, head.weight wd_head, biases none; linear/full (timm convention): no decay on biases, norms,
    pos_embed, cls_token."""
    m, wd = job["method"], job["optimizer"]["weightDecay"]
    if m in ("linear", "full"):
        no = name.endswith(".bias") or name.endswith("norm.weight") or name.endswith("norm1.weight") \
            or name.endswith("norm2.weight") or name in ("pos_embed", "cls_token")
        return 0.0 if no else wd
    if m.startswith("da-vpt"):  # da-vpt.md "Recipe": no decay on biases and 1-D tensors; head.weight wd_head; the rest wd
        if name.endswith(".bias") or len(shape) == 1:
            return 0.0
        return job["options"]["headWeightDecay"] if name == "head.weight" else wd
    if m == "sa2vp":  # BEiT optim_factory: no decay on 1-D tensors and biases
        return 0.0 if name.endswith(".bias") or len(shape) == 1 else wd
    if m.startswith("spt"):
        return job["options"]["headWeightDecay"] if name == "head.weight" else 0.0 if name == "head.bias" else wd
    return 0.0 if name == "head.bias" else wd


def lr_schedule(job):
    """Warmup linear from 0 then cosine to 0; per epoch (VPT quirk: epoch 0 at lr 0) or per step."""
    o, E, spe = job["optimizer"], job["epochs"], job["stepsPerEpoch"]
    base = o["lr"] * job["batchSize"] / 256 if o["scaleLrByBatch"] else o["lr"]
    per_step = job["schedulePer"] == "step"
    W = job["warmupEpochs"] * (spe if per_step else 1)
    T = E * (spe if per_step else 1)
    out = []
    for t in range(E * spe):
        u = t if per_step else t // spe
        out.append(base * u / W if u < W else base * 0.5 * (1 + math.cos(math.pi * (u - W) / max(1, T - W))))
    return out


def main(d: str) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    job = json.load(open(os.path.join(d, "job.json")))
    init = st.load(os.path.join(d, "init.safetensors"))
    data = st.load(os.path.join(d, "data.safetensors"))

    model = VisionTransformer(get_arch(job["arch"], num_classes=job["numClasses"]))
    sd = {k: v for k, v in st.load(job["weights"]).items() if not k.startswith("head.")}
    missing, unexpected = model.load_weights(sd, strict=False)
    assert set(missing) == set(HEAD) and not unexpected, (missing, unexpected)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    backbone = dict(model.named_parameters())

    # Trainable tensors: backbone ones (full) are the model's own parameters, set to the dumped init.
    P = {}
    for k, v in init.items():
        if k in backbone and k not in HEAD:
            assert backbone[k].shape == v.shape, (k, backbone[k].shape, v.shape)
            with torch.no_grad():
                backbone[k].copy_(v)
            backbone[k].requires_grad_(True)
            P[k] = backbone[k]
        else:
            P[k] = torch.nn.Parameter(v.clone())
    forward = make_forward(job, model)

    wds = {k: weight_decay(job, k, tuple(P[k].shape)) for k in P}
    bad = {k: (wds[k], job["weightDecay"][k]) for k in P if abs(wds[k] - job["weightDecay"][k]) > 1e-12}
    assert not bad, f"weight decay differs from the dump (ours, dump): {bad}"
    lrs = lr_schedule(job)
    steps = len(job["lr"])
    assert steps == job["epochs"] * job["stepsPerEpoch"], (steps, job["epochs"], job["stepsPerEpoch"])
    worst = max(abs(a - b) / max(1e-12, abs(b)) for a, b in zip(lrs, job["lr"]) if b or a)
    assert worst < 1e-9, f"lr schedule differs from the dump by {worst:.2e} (relative)"

    o = job["optimizer"]
    groups = [{"params": [P[k]], "weight_decay": wds[k]} for k in P]
    if o["kind"] == "sgd":
        opt = torch.optim.SGD(groups, lr=0.0, momentum=o["momentum"], dampening=0, nesterov=False)
    else:
        opt = torch.optim.AdamW(groups, lr=0.0, betas=tuple(o["betas"]), eps=o["eps"])

    by = data["batch_y"].long()
    if "batch_x" in data:
        batch = lambda t: data["batch_x"][t]  # noqa: E731  augmented batches as drawn
    else:
        order = data["order"].long()
        assert torch.equal(data["train_y"].long()[order], by), "order/batch_y do not match train_y"
        batch = lambda t: data["train_x"][order[t]]  # noqa: E731
    vx, vy = data["val_x"], data["val_y"].long()

    # Dropout masks our engine fed (mask.<k> [steps, ...]); a method with dropout must have them.
    n_masks = sum(1 for k in data if k.startswith("mask."))
    rate = job["options"].get("dropout", 0)
    if rate and not n_masks:
        raise SystemExit(f"{job['method']}: dropout {rate} but no mask.* tensors in the dump")
    if n_masks and not job["method"].startswith("vpt"):
        raise SystemExit(f"{job['method']}: dropout masks are only applied for VPT here")
    masks_at = lambda t: [data[f"mask.{k}"][t] for k in range(n_masks)] if n_masks else None  # noqa: E731
    if n_masks:
        m = torch.stack([data[f"mask.{k}"] for k in range(n_masks)])
        kept = (m != 0).float().mean().item()
        assert torch.all((m == 0) | ((m - 1 / (1 - rate)).abs() < 1e-6)), "mask values are not 0 or 1/(1-rate)"
        print(f"dropout masks: {n_masks} per step, shape {list(m.shape[2:])}, kept {kept:.4f} (rate {rate})", file=sys.stderr)

    step_loss, epochs = [], []
    for e in range(job["epochs"]):
        seen, total = 0, 0.0
        for t in range(e * job["stepsPerEpoch"], (e + 1) * job["stepsPerEpoch"]):
            x, y = batch(t), by[t]
            if "input.proxy_mask" in data:
                out = forward(P, x, y, data["input.proxy_mask"][t])
            else:
                out = forward(P, x, masks_at(t)) if n_masks else forward(P, x)
            loss = loss_fn(job, out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for g in opt.param_groups:
                g["lr"] = lrs[t]
            opt.step()
            step_loss.append(loss.item())
            seen += len(y)
            total += loss.item() * len(y)
        correct = 0
        with torch.no_grad():
            for i in range(0, len(vy), 256):
                out = forward(P, vx[i : i + 256])
                logits = out[0] if isinstance(out, tuple) else out
                correct += (logits.argmax(1) == vy[i : i + 256]).sum().item()
        epochs.append({"trainLoss": total / seen, "valTop1": correct / len(vy)})
        print(f"epoch {e + 1}: train loss {total / seen:.4f}, val top-1 {100 * correct / len(vy):.2f} %", file=sys.stderr)
    out = {"epochs": epochs, "stepLoss": step_loss, "torch": torch.__version__}
    json.dump(out, open(os.path.join(d, "ref.json"), "w"))
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
