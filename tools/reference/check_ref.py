#!/usr/bin/python3
"""Independent checks of vit_ref.py against torch's own building blocks, plus a bug-sensitivity table.

Usage:  /usr/bin/python3 tools/reference/check_ref.py [FIXTURE_DIR]     (default: test/fixtures)

1. Attention      vs F.multi_head_attention_forward (packed in_proj = timm qkv, rows q|k|v).
2. Block / model  vs a stack of nn.TransformerEncoderLayer(norm_first=True, gelu, eps 1e-6).
3. Bicubic resample vs a numpy implementation (Keys cubic a=-0.75, half-pixel centres, edge clamp),
   identity at equal size, and the stored pos_embed_48 fixture.
4. The stored fixture outputs vs a fresh float64 forward of the stored weights.
5. How far typical implementation mistakes move the fixture logits (to pick a test tolerance).
"""
from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402
from vit_ref import VisionTransformer, get_arch, resample_abs_pos_embed  # noqa: E402

torch.manual_seed(1)
DT = torch.float64


def maxdiff(a, b):
    return (a - b).abs().max().item()


def report(name, d, tol):
    ok = d <= tol
    print(f"[{'ok' if ok else 'FAIL'}] {name}: max|d|={d:.3e} (tol {tol:.0e})")
    if not ok:
        raise SystemExit(1)


def load_fixture(fdir):
    sd, meta = st.load(os.path.join(fdir, "vit_fixture.safetensors"), with_metadata=True)
    io = st.load(os.path.join(fdir, "vit_fixture_io.safetensors"))
    arch = get_arch("fixture")
    m = VisionTransformer(arch).to(DT)
    m.load_weights({k: v.to(DT) for k, v in sd.items()})
    m.eval()
    return m, sd, io, meta


def torch_encoder_layer(blk, dim, heads):
    """An nn.TransformerEncoderLayer carrying the same weights as one of our blocks."""
    layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=blk.mlp.fc1.out_features, dropout=0.0,
                                       activation="gelu", layer_norm_eps=1e-6, batch_first=True,
                                       norm_first=True).to(DT).eval()
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(blk.attn.qkv.weight)
        layer.self_attn.in_proj_bias.copy_(blk.attn.qkv.bias)
        layer.self_attn.out_proj.weight.copy_(blk.attn.proj.weight)
        layer.self_attn.out_proj.bias.copy_(blk.attn.proj.bias)
        layer.linear1.weight.copy_(blk.mlp.fc1.weight)
        layer.linear1.bias.copy_(blk.mlp.fc1.bias)
        layer.linear2.weight.copy_(blk.mlp.fc2.weight)
        layer.linear2.bias.copy_(blk.mlp.fc2.bias)
        layer.norm1.weight.copy_(blk.norm1.weight)
        layer.norm1.bias.copy_(blk.norm1.bias)
        layer.norm2.weight.copy_(blk.norm2.weight)
        layer.norm2.bias.copy_(blk.norm2.bias)
    return layer


def np_bicubic_resize(img, out_h, out_w, a=-0.75):
    """img [C,H,W] -> [C,out_h,out_w]; PyTorch/OpenCV-style bicubic, align_corners=False, no antialias."""
    C, H, W = img.shape

    def cubic(t):
        t = abs(t)
        if t <= 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        if t < 2:
            return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return 0.0

    def taps(n_in, n_out):
        rows = []
        scale = n_in / n_out
        for o in range(n_out):
            src = (o + 0.5) * scale - 0.5
            i0 = int(np.floor(src))
            t = src - i0
            idx = [min(max(i0 + k, 0), n_in - 1) for k in (-1, 0, 1, 2)]
            w = [cubic(t + 1), cubic(t), cubic(1 - t), cubic(2 - t)]
            rows.append((idx, w))
        return rows

    ty, tx = taps(H, out_h), taps(W, out_w)
    out = np.zeros((C, out_h, out_w))
    for oy, (iy, wy) in enumerate(ty):
        for ox, (ix, wx) in enumerate(tx):
            acc = np.zeros(C)
            for a_, yy in zip(wy, iy):
                for b_, xx in zip(wx, ix):
                    acc += a_ * b_ * img[:, yy, xx]
            out[:, oy, ox] = acc
    return out


def main(fdir):
    m, sd, io, meta = load_fixture(fdir)
    D, H = m.arch.embed_dim, m.arch.num_heads

    # ---- 0. file format, read by hand -------------------------------------------------------
    with open(os.path.join(fdir, "vit_fixture.safetensors"), "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and list(k for k in hdr if k != "__metadata__") == sorted(k for k in hdr if k != "__metadata__")
    info = hdr["head.bias"]
    b, e = info["data_offsets"]
    hb = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4")
    assert np.array_equal(hb, sd["head.bias"].numpy()), "hand-parsed tensor differs"
    print(f"[ok] safetensors header {n} bytes (mult of 8), sorted names, hand-parsed head.bias matches; "
          f"metadata={hdr['__metadata__']}")

    # ---- 1. attention vs F.multi_head_attention_forward ------------------------------------
    x = torch.randn(2, 19, D, dtype=DT)
    attn = m.blocks[1].attn
    with torch.no_grad():
        ours = attn(x)
        xt = x.transpose(0, 1)  # [N,B,D]
        ref, _ = F.multi_head_attention_forward(
            xt, xt, xt, D, H, attn.qkv.weight, attn.qkv.bias, None, None, False, 0.0,
            attn.proj.weight, attn.proj.bias, training=False, need_weights=False)
        ref = ref.transpose(0, 1)
    report("attention vs F.multi_head_attention_forward", maxdiff(ours, ref), 1e-12)

    # ---- 2. blocks / whole model vs nn.TransformerEncoderLayer ------------------------------
    layers = [torch_encoder_layer(b_, D, H) for b_ in m.blocks]
    with torch.no_grad():
        report("block 0 vs nn.TransformerEncoderLayer(norm_first)", maxdiff(m.blocks[0](x), layers[0](x)), 1e-12)
        xin = io["input"].to(DT)
        prompt = io["prompt"].to(DT)
        for use_prompt in (False, True):
            # embedding written out independently of vit_ref.embed
            pe = F.conv2d(xin, m.patch_embed.proj.weight, m.patch_embed.proj.bias, stride=m.arch.patch_size)
            pe = pe.reshape(xin.shape[0], D, -1).permute(0, 2, 1)
            h = torch.cat([m.cls_token.repeat(xin.shape[0], 1, 1), pe], 1) + m.pos_embed
            if use_prompt:
                h = torch.cat([h[:, :1], prompt.repeat(xin.shape[0], 1, 1), h[:, 1:]], 1)
            for L in layers:
                h = L(h)
            h = F.layer_norm(h, (D,), m.norm.weight, m.norm.bias, 1e-6)
            logits = F.linear(h[:, 0], m.head.weight, m.head.bias)
            ours = m(xin, prompt if use_prompt else None)
            report(f"model{' +prompt' if use_prompt else ''} vs TransformerEncoderLayer stack",
                   maxdiff(ours, logits), 1e-12)

    # ---- 3. bicubic resample ---------------------------------------------------------------
    pos = sd["pos_embed"].to(DT)
    g = m.arch.grid
    grid = pos[0, 1:].reshape(g, g, D).permute(2, 0, 1).numpy()
    same = F.interpolate(torch.from_numpy(grid)[None], size=(g, g), mode="bicubic", align_corners=False)[0]
    report("bicubic at identity size == input", maxdiff(same, torch.from_numpy(grid)), 0.0)
    for new in (6, 3, 7, 14):
        ref = np_bicubic_resize(grid, new, new)
        ours = resample_abs_pos_embed(pos, new)[0, 1:].reshape(new, new, D).permute(2, 0, 1)
        report(f"resample_abs_pos_embed {g}->{new} vs numpy bicubic", maxdiff(ours, torch.from_numpy(ref)), 1e-12)
    report("resample keeps CLS row", maxdiff(resample_abs_pos_embed(pos, 6)[0, 0], pos[0, 0]), 0.0)
    report("pos_embed_48 fixture vs numpy bicubic (float32 storage)",
           maxdiff(io["pos_embed_48"][0, 1:].reshape(6, 6, D).permute(2, 0, 1).double(),
                   torch.from_numpy(np_bicubic_resize(grid, 6, 6))), 1e-6)

    # ---- 4. fixture outputs reproduce -------------------------------------------------------
    xin = io["input"].to(DT)
    with torch.no_grad():
        report("fixture features", maxdiff(m.forward_features(xin)[:, 0].float(), io["features"]), 1e-6)
        report("fixture logits", maxdiff(m(xin).float(), io["logits"]), 1e-6)
        report("fixture logits_prompted", maxdiff(m(xin, io["prompt"].to(DT)).float(), io["logits_prompted"]), 1e-6)
    pr = io["prompt"].to(DT).requires_grad_(True)
    (gp,) = torch.autograd.grad((m(xin, pr) * io["grad_weight"].to(DT)).sum(), pr)
    report("fixture grad_prompt", maxdiff(gp.float(), io["grad_prompt"]), 1e-6)
    # finite-difference check of one prompt coordinate
    eps = 1e-6
    with torch.no_grad():
        pp = io["prompt"].to(DT).clone()
        pp[0, 1, 7] += eps
        fp = (m(xin, pp) * io["grad_weight"].to(DT)).sum()
        pp[0, 1, 7] -= 2 * eps
        fm = (m(xin, pp) * io["grad_weight"].to(DT)).sum()
    report("grad_prompt[0,1,7] vs central finite difference", abs((fp - fm).item() / (2 * eps) - gp[0, 1, 7].item()), 1e-7)
    m48 = VisionTransformer(get_arch("fixture", img_size=48)).to(DT)
    m48.load_weights({k: v.to(DT) for k, v in sd.items()})
    with torch.no_grad():
        report("fixture logits_48", maxdiff(m48.eval()(io["input_48"].to(DT)).float(), io["logits_48"]), 1e-6)

    # ---- 5. bug sensitivity ----------------------------------------------------------------
    print("\nhow far common mistakes move the fixture logits / resampled pos_embed (float32 noise is ~1e-6):")
    import vit_ref
    base = io["logits"].double()
    base_p = io["logits_prompted"].double()

    def run(fn, prompted=False):
        with torch.no_grad():
            return maxdiff(fn(), base_p if prompted else base)

    xin = io["input"].to(DT)
    pr = io["prompt"].to(DT)
    cases = {}
    orig_gelu = F.gelu
    try:
        vit_ref.F.gelu = lambda t: orig_gelu(t, approximate="tanh")
        cases["tanh GELU instead of erf"] = run(lambda: m(xin))
    finally:
        vit_ref.F.gelu = orig_gelu
    for mod in m.modules():
        if isinstance(mod, nn.LayerNorm):
            mod.eps = 1e-5
    cases["LayerNorm eps 1e-5 instead of 1e-6"] = run(lambda: m(xin))
    for mod in m.modules():
        if isinstance(mod, nn.LayerNorm):
            mod.eps = 1e-6
    # qkv split as [H,3,dh] instead of [3,H,dh]
    orig_fwd = vit_ref.Attention.forward

    def wrong_split(self, x_):
        B, N, D_ = x_.shape
        qkv = self.qkv(x_).reshape(B, N, self.heads, 3, self.head_dim).permute(3, 0, 2, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, D_))
    vit_ref.Attention.forward = wrong_split
    cases["qkv split [H,3,dh] instead of [3,H,dh]"] = run(lambda: m(xin))
    vit_ref.Attention.forward = orig_fwd
    # Not a mistake: attention has no positional bias, so token order is irrelevant to the CLS output.
    d_end = run(lambda: m.forward_head(_seq_forward(m, xin, pr, where="end")), prompted=True)
    print(f"  (equivalent, not a bug) prompt appended after the patches instead of after CLS: "
          f"max|dlogits| = {d_end:.1e} (float32 storage noise)")
    assert d_end < 1e-6
    cases["prompt given the pos_embed of patch 0"] = run(
        lambda: m.forward_head(_seq_forward(m, xin, pr, where="pos")), prompted=True)
    cases["mean-pool instead of CLS"] = run(lambda: m.head(m.forward_features(xin)[:, 1:].mean(1)))
    with torch.no_grad():
        posb = resample_abs_pos_embed(pos, 6)
        grid6 = F.interpolate(torch.from_numpy(grid)[None], size=(6, 6), mode="bilinear", align_corners=False)[0]
        cases["resample 4->6: bilinear instead of bicubic (|dpos|)"] = maxdiff(grid6.permute(1, 2, 0).reshape(36, D), posb[0, 1:])
        grid6 = F.interpolate(torch.from_numpy(grid)[None], size=(6, 6), mode="bicubic", align_corners=True)[0]
        cases["resample 4->6: align_corners=True (|dpos|)"] = maxdiff(grid6.permute(1, 2, 0).reshape(36, D), posb[0, 1:])
    for k, v in cases.items():
        print(f"  {k:52s} max|d| = {v:.3e}")
        assert v > 1e-5, k
    print("\nall checks passed")


def _seq_forward(m, x, prompt, where):
    h = m.embed(x)
    B = h.shape[0]
    p = prompt.expand(B, -1, -1)
    if where == "end":
        h = torch.cat([h, p], 1)
    elif where == "pos":
        h = torch.cat([h[:, :1], p + m.pos_embed[:, 1:2], h[:, 1:]], 1)
    for blk in m.blocks:
        h = blk(h)
    return m.norm(h)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures")
