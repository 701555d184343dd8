#!/usr/bin/python3
"""SA2VP reference on the fixture ViT, written from docs/spec/sa2vp.md (not from the TypeScript code).

Usage:  /usr/bin/python3 tools/reference/method_sa2vp.py [OUT]   (default: test/fixtures/method_sa2vp.safetensors)

Semantics (spec "Tensors", "Forward", "Loss"), on the `fixture` arch (32 px, patch 8 -> 4x4 grid + CLS = 17 tokens, D 96,
depth 3, 3 heads), with inter-dim r = 4, b2p layers {0, 2} (deep prompt map at layer 2), add_scale 0.5:
- E = cat(CLS, patches) + pos;  P = ppt_proj(ppt) + pos  (dropout off: eval semantics).
- For each layer i:  b2p: F = X_i(kv=H, q=P); P = Block_i(P) [+ Block_i(deep_proj_j(deep_ppt_j)) * cross_conv_j];
  H = Block_i(H); P = P + a*F.   p2b: F = X_i(kv=P, q=H); P = Block_i(P); H = Block_i(H) + a*F.
- X_i(kv, q) = Mlp_small(ffn_norm(q + CA(LN1_i(kv), LN1_i(q)))), CA with block i's frozen q/k/v/out per head; the
  CLS query attends to every kv token; patch query (r, c) only to the patch keys of the 3x3 neighbourhood at (r, c)
  (an explicit per-token key list, as the official per-token loop: 4 / 6 / 9 keys).
- logits = head(norm(H)[:, 0]); logits_p = head(norm(P)[:, 0]);  loss = 0.8 CE(logits) + 0.2 CE(logits_p).

Trainable tensors are drawn well-scaled (not the method's tiny init) so every term moves the outputs:
ppt, deep_ppt ~ N(0,1); Linear weights ~ N(0, 1/fan_in); biases ~ N(0, 0.1^2); ffn_norm.weight 1 + N(0, 0.1^2);
cross_conv ~ N(0, 0.5^2); head ~ N(0, 1/D). Stored (float32; computed in float64):
  param.<name>           the trainable tensors (TS names)
  input [2,3,32,32], y [2]
  logits [2,4], logits_p [2,4], loss [1], grad.<name> (d loss / d param)
  mask_keys [17]         how many keys each query row attends to (CLS: 17)
"""
from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402
from vit_ref import VisionTransformer, get_arch  # noqa: E402

R = 4
B2P = [0, 2]
ADD_SCALE = 0.5
C = 4
LN_EPS = 1e-6


def neighbour_lists(g: int):
    """kv index lists per query token 0..g*g: CLS -> all tokens; patch (r,c) -> its 3x3 patch neighbourhood."""
    T = g * g + 1
    lists = [list(range(T))]
    for q in range(1, T):
        r, c = divmod(q - 1, g)
        lists.append([1 + rr * g + cc for rr in range(r - 1, r + 2) for cc in range(c - 1, c + 2) if 0 <= rr < g and 0 <= cc < g])
    return lists


def cross_attention(blk, kv, q, lists, heads):
    """Per-head local cross-attention with block `blk`'s frozen projections; kv, q already normalised."""
    B, T, D = kv.shape
    dh = D // heads
    Wq, Wk, Wv = blk.attn.qkv.weight.split(D, 0)
    bq, bk, bv = blk.attn.qkv.bias.split(D, 0)
    split = lambda t: t.reshape(B, T, heads, dh).permute(0, 2, 1, 3)  # [B,h,T,dh]
    Q, K, V = split(F.linear(q, Wq, bq)), split(F.linear(kv, Wk, bk)), split(F.linear(kv, Wv, bv))
    rows = []
    for i, idx in enumerate(lists):
        s = (Q[:, :, i : i + 1] * dh ** -0.5) @ K[:, :, idx].transpose(-1, -2)  # [B,h,1,n]
        rows.append(s.softmax(-1) @ V[:, :, idx])  # [B,h,1,dh]
    o = torch.cat(rows, 2).permute(0, 2, 1, 3).reshape(B, T, D)
    return blk.attn.proj(o)


def cross_block(blk, p, i, kv, q, lists, heads):
    ln1 = lambda t: F.layer_norm(t, (t.shape[-1],), blk.norm1.weight, blk.norm1.bias, LN_EPS)
    u = q + cross_attention(blk, ln1(kv), ln1(q), lists, heads)
    z = F.layer_norm(u, (u.shape[-1],), p[f"cross_attn.{i}.ffn_norm.weight"], p[f"cross_attn.{i}.ffn_norm.bias"], LN_EPS)
    z = F.gelu(F.linear(z, p[f"cross_attn.{i}.ffn.fc1.weight"], p[f"cross_attn.{i}.ffn.fc1.bias"]))
    return F.linear(z, p[f"cross_attn.{i}.ffn.fc2.weight"], p[f"cross_attn.{i}.ffn.fc2.bias"])


def sa2vp_forward(model: VisionTransformer, p: dict, x: torch.Tensor):
    arch = model.arch
    lists = neighbour_lists(arch.grid)
    H = model.embed(x)
    P = F.linear(p["ppt"], p["ppt_proj.weight"], p["ppt_proj.bias"]) + model.pos_embed
    P = P.expand(H.shape[0], -1, -1)
    deep = [i for i in B2P if i > 0]
    for i, blk in enumerate(model.blocks):
        if i in B2P:
            Fx = cross_block(blk, p, i, H, P, lists, arch.num_heads)
            P = blk(P)
            if i in deep:
                j = deep.index(i)
                inner = blk(F.linear(p["deep_ppt"][j], p[f"deep_proj.{j}.weight"], p[f"deep_proj.{j}.bias"]))
                P = P + inner * p["cross_conv"][j]
            H = blk(H)
            P = P + ADD_SCALE * Fx
        else:
            Fx = cross_block(blk, p, i, P, H, lists, arch.num_heads)
            P = blk(P)
            H = blk(H) + ADD_SCALE * Fx
    head = lambda t: F.linear(model.norm(t)[:, 0], p["head.weight"], p["head.bias"])
    return head(H), head(P)


def make_params(arch, g: torch.Generator) -> dict:
    D, T, L = arch.embed_dim, arch.grid ** 2 + 1, arch.depth
    k = len([i for i in B2P if i > 0])
    n = lambda *s, std=1.0: torch.randn(*s, generator=g) * std
    p = {"ppt": n(1, T, R), "ppt_proj.weight": n(D, R, std=R ** -0.5), "ppt_proj.bias": n(D, std=0.1)}
    p["deep_ppt"] = n(k, 1, T, R)
    for j in range(k):
        p[f"deep_proj.{j}.weight"] = n(D, R, std=R ** -0.5)
        p[f"deep_proj.{j}.bias"] = n(D, std=0.1)
    p["cross_conv"] = n(k, D, std=0.5)
    for i in range(L):
        p[f"cross_attn.{i}.ffn_norm.weight"] = 1 + n(D, std=0.1)
        p[f"cross_attn.{i}.ffn_norm.bias"] = n(D, std=0.1)
        p[f"cross_attn.{i}.ffn.fc1.weight"] = n(R, D, std=D ** -0.5)
        p[f"cross_attn.{i}.ffn.fc1.bias"] = n(R, std=0.1)
        p[f"cross_attn.{i}.ffn.fc2.weight"] = n(D, R, std=R ** -0.5)
        p[f"cross_attn.{i}.ffn.fc2.bias"] = n(D, std=0.1)
    p["head.weight"] = n(C, D, std=D ** -0.5)
    p["head.bias"] = n(C, std=0.1)
    return p


def main(out: str) -> None:
    torch.manual_seed(0)
    here = os.path.dirname(os.path.abspath(__file__))
    sd = st.load(os.path.join(here, "../../test/fixtures/vit_fixture.safetensors"))
    arch = get_arch("fixture")
    model = VisionTransformer(arch).double()
    model.load_weights({k: v.double() for k, v in sd.items()})
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    g = torch.Generator().manual_seed(3)
    params32 = make_params(arch, g)
    x32 = torch.randn(2, 3, 32, 32, generator=g)
    y = torch.tensor([1, 3])
    p = {k: v.double().requires_grad_(True) for k, v in params32.items()}
    logits, logits_p = sa2vp_forward(model, p, x32.double())
    loss = 0.8 * F.cross_entropy(logits, y) + 0.2 * F.cross_entropy(logits_p, y)
    grads = torch.autograd.grad(loss, list(p.values()))
    lists = neighbour_lists(arch.grid)
    tensors = {f"param.{k}": v for k, v in params32.items()}
    tensors.update({f"grad.{k}": gr.float() for k, gr in zip(p.keys(), grads)})
    tensors.update(
        input=x32,
        y=y.float(),
        logits=logits.detach().float(),
        logits_p=logits_p.detach().float(),
        loss=loss.detach().float().reshape(1),
        mask_keys=torch.tensor([len(l) for l in lists], dtype=torch.float32),
    )
    # A float32 run of the same maths: how far float32 noise alone moves the outputs.
    m32 = VisionTransformer(arch)
    m32.load_weights(sd)
    m32.eval()
    l32, lp32 = sa2vp_forward(m32, params32, x32)
    noise = max((l32 - logits.float()).abs().max().item(), (lp32 - logits_p.float()).abs().max().item())
    meta = {"generator": "tools/reference/method_sa2vp.py", "r": str(R), "b2p": str(B2P), "add_scale": str(ADD_SCALE), "float32_noise": f"{noise:.2e}", "torch": torch.__version__}
    st.save(out, {k: v.contiguous() for k, v in sorted(tensors.items())}, metadata=meta)
    print(f"wrote {out}: {os.path.getsize(out)} bytes; loss {loss.item():.6f}; logits {logits.detach().numpy().round(4).tolist()}; "
          f"logits_p {logits_p.detach().numpy().round(4).tolist()}; float32 noise {noise:.2e}; keys/query {[len(l) for l in lists]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/method_sa2vp.safetensors")
