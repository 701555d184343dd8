#!/usr/bin/python3
"""Generate the small ViT parity fixtures used by the TypeScript tests.

Usage:  /usr/bin/python3 tools/reference/make_fixtures.py [OUT_DIR]      (default: test/fixtures)

Writes OUT_DIR/vit_fixture.safetensors (weights, `fixture` arch) and OUT_DIR/vit_fixture_io.safetensors
(inputs, reference outputs, gradients). Deterministic: torch.manual_seed(0); every stored tensor is float32.
Reference outputs are computed in float64 from the (float32-exact) stored weights and inputs and then rounded
to float32, so they are the float32 rounding of the exact answer; a float32 implementation should match them to
within its own rounding noise (the script prints how far a float32 torch forward lands from them).
"""
from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402
from vit_ref import VisionTransformer, get_arch, resample_abs_pos_embed  # noqa: E402


def fixture_weights(model: VisionTransformer, g: torch.Generator) -> dict:
    """Well-scaled random weights (activations O(1)); drawn in sorted-name order."""
    D = model.arch.embed_dim
    sd = {}
    for name, p in sorted(model.state_dict().items()):
        shape = p.shape

        def normal(std):
            return torch.randn(shape, generator=g, dtype=torch.float32) * std

        if name in ("cls_token", "pos_embed"):
            t = normal(0.5)
        elif name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            t = 1.0 + normal(0.1)
        elif name == "head.weight":
            t = normal(D ** -0.5)
        elif name.endswith(".weight"):  # linear [out,in] or conv [out,in,k,k]
            fan_in = int(torch.tensor(shape[1:]).prod())
            t = normal(fan_in ** -0.5)
        elif name.endswith(".bias"):  # linear/conv/LN biases
            t = normal(0.1)
        else:
            raise KeyError(name)
        sd[name] = t.contiguous()
    return sd


def build_loaded(arch, sd, dtype):
    m = VisionTransformer(arch).to(dtype)
    m.load_weights({k: v.to(dtype) for k, v in sd.items()})  # resample (if any) happens in `dtype`
    m = m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def main(out_dir: str) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    arch = get_arch("fixture")
    os.makedirs(out_dir, exist_ok=True)

    m32 = VisionTransformer(arch)
    sd = fixture_weights(m32, g)
    m32 = build_loaded(arch, sd, torch.float32)
    m64 = build_loaded(arch, sd, torch.float64)

    D, C = arch.embed_dim, arch.num_classes
    x = torch.randn(4, 3, arch.img_size, arch.img_size, generator=g)
    prompt = torch.rand(1, 2, D, generator=g) - 0.5
    grad_weight = torch.randn(4, C, generator=g)
    x48 = torch.randn(2, 3, 48, 48, generator=g)

    # ---- reference outputs (float64 math) -----------------------------------------------------
    xd = x.double()
    with torch.no_grad():
        feats = m64.forward_features(xd)[:, 0]
        logits = m64.head(feats)

    pd = prompt.double().requires_grad_(True)
    logits_prompted = m64(xd, pd)
    (gp,) = torch.autograd.grad((logits_prompted * grad_weight.double()).sum(), pd)

    xg = xd.clone().requires_grad_(True)
    (gi,) = torch.autograd.grad((m64(xg) * grad_weight.double()).sum(), xg)

    arch48 = get_arch("fixture", img_size=48)
    m48 = build_loaded(arch48, {k: v.double() for k, v in sd.items()}, torch.float64)
    with torch.no_grad():
        logits_48 = m48(x48.double())
    pos48 = resample_abs_pos_embed(sd["pos_embed"].double(), arch48.grid)
    assert torch.equal(m48.pos_embed, pos48)

    io = {
        "input": x,
        "features": feats,
        "logits": logits,
        "prompt": prompt,
        "logits_prompted": logits_prompted.detach(),
        "grad_weight": grad_weight,
        "grad_prompt": gp,
        "grad_input": gi,
        "input_48": x48,
        "logits_48": logits_48,
        "pos_embed_48": pos48,
    }
    io = {k: v.detach().to(torch.float32).contiguous() for k, v in io.items()}

    # ---- sanity checks ----------------------------------------------------------------------
    with torch.no_grad():
        l32a = m32(x)
        l32b = m32(x)
        assert torch.equal(l32a, l32b), "float32 forward not deterministic"
        f32_err = (l32a - io["logits"]).abs().max().item()
        p32_err = (m32(x, prompt) - io["logits_prompted"]).abs().max().item()
        print(f"float32 torch forward vs float64 reference: logits max|d|={f32_err:.2e}, "
              f"prompted max|d|={p32_err:.2e}")
        assert f32_err < 1e-4 and p32_err < 1e-4

        # the prompt must change the logits noticeably
        assert (io["logits_prompted"] - io["logits"]).abs().max() > 1e-2

        # perturbing individual weights by 1e-3 must move the logits
        base = m64(xd)
        for name, idx in [("blocks.0.attn.qkv.weight", (0, 0)),            # a query weight
                          ("blocks.1.attn.qkv.weight", (D + 5, 7)),        # a key weight
                          ("blocks.2.attn.qkv.weight", (2 * D + 3, 1)),    # a value weight
                          ("blocks.2.mlp.fc2.weight", (4, 11)),
                          ("pos_embed", (0, 3, 17)),
                          ("norm.bias", (5,))]:
            sd2 = {k: v.double().clone() for k, v in sd.items()}
            sd2[name][idx] += 1e-3
            m2 = build_loaded(arch, sd2, torch.float64)
            d = (m2(xd) - base).abs().max().item()
            print(f"perturb {name}{list(idx)} by 1e-3 -> max|dlogits| = {d:.3e}")
            assert d > 1e-5, name

    # round-trip through the writer/reader
    meta = arch.metadata()
    wpath = os.path.join(out_dir, "vit_fixture.safetensors")
    iopath = os.path.join(out_dir, "vit_fixture_io.safetensors")
    st.save(wpath, sd, metadata={**meta, "arch": "fixture", "format": "timm VisionTransformer state dict",
                                 "generator": "tools/reference/make_fixtures.py seed 0"})
    st.save(iopath, io, metadata={
        "weights": "vit_fixture.safetensors",
        "computed_in": "float64, stored float32",
        "features": "final norm output at token 0 (pre-head)",
        "logits_prompted": "prompt inserted after CLS, no pos embed: [cls, prompt, patches]",
        "grad_prompt": "d sum(logits_prompted * grad_weight) / d prompt",
        "grad_input": "d sum(logits * grad_weight) / d input",
        "logits_48": "same weights, model built at img 48 (grid 6), pos_embed bicubic-resampled 4x4->6x6",
        "pos_embed_48": "resample_abs_pos_embed(pos_embed, 6): bicubic, align_corners=False, no antialias",
    })
    sd_back, meta_back = st.load(wpath, with_metadata=True)
    io_back = st.load(iopath)
    assert meta_back["embed_dim"] == "96"
    assert all(torch.equal(sd_back[k], sd[k]) for k in sd) and set(sd_back) == set(sd)
    assert all(torch.equal(io_back[k], io[k]) for k in io) and set(io_back) == set(io)
    m_back = build_loaded(arch, sd_back, torch.float32)
    with torch.no_grad():
        assert torch.equal(m_back(x), l32a), "reload changed float32 logits"

    # ---- summary ----------------------------------------------------------------------------
    print("\nvit_fixture_io.safetensors:")
    for k, v in io.items():
        print(f"  {k:18s} {str(list(v.shape)):18s} max|v|={v.abs().max().item():.4g}  "
              f"mean|v|={v.abs().mean().item():.4g}")
    wmax = max(v.abs().max().item() for v in sd.values())
    print(f"weights: {len(sd)} tensors, {sum(v.numel() for v in sd.values())} params, max|w|={wmax:.4g}")
    total = 0
    for p in (wpath, iopath):
        n = os.path.getsize(p)
        total += n
        print(f"{p}: {n} bytes")
    print(f"total: {total} bytes ({total / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures")
