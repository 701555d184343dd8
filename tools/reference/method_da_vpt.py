#!/usr/bin/python3
"""Reference DA-VPT (Proxy-Anchor metric loss and deep forward) on the `fixture` ViT.

Usage:  /usr/bin/python3 tools/reference/method_da_vpt.py [OUT]   (default: test/fixtures/method_da_vpt.safetensors)

Written from docs/spec/da-vpt.md, not from the TypeScript code:
  * forward (spec "Forward"): patch_embed -> cat CLS -> + pos_embed; before every block the previous prompt outputs are
    dropped and the block's prompts inserted after CLS (no pos): proxy_prompt_tokens[k] (l2-normalised when
    vpt_norm = l2) at the proxy blocks start..end, other_prompt_tokens[j] elsewhere (in order); counts differ.
    norm -> x[:, 0] -> head. No dropout.
  * loss (spec "Loss"): CE + (1/p_depth) sum over proxy blocks of w_vpt * PA(s) + w_cls * PA(t), with _x the block's
    input, z = normalize(mean of its 196-style image tokens), c = normalize(W_q LN1(_x_cls) + b_q),
    p_j = 5 normalize(P_l[j]) from the raw prompts, s = z p^T, t = c p^T;
    PA(S) = 1/P sum_j log(1 + sum_{b: yhat_b = j} exp(-32 (S_bj - 0.1)))
          + 1/P sum_j log(1 + sum_{b: yhat_b != j} exp( 32 (S_bj + 0.1)))
    written with torch.logsumexp over [0, masked entries] (masked = -inf), yhat = mapping[y].
  * '+bias' variant (spec "Tensors"): cls_token, norm1 weight/bias, and the qkv/proj/fc2/norm2 biases are trained
    tensors too; here they are the backbone's values plus noise, and their gradients are recorded.

Fixture contents (float32; math in float64). Backbone: test/fixtures/vit_fixture.safetensors (depth 3).
  x [6,3,32,32], label [6], mapping [4] (class -> proxy, 2 proxies), C = 4
  proxy_prompt_tokens [2,2,96] (blocks 1..2), other_prompt_tokens [1,3,96] (block 0), head.weight/bias
  bias.<key>  the '+bias' variant's tuned backbone tensors
  pa.S [6,2], pa.pos [6,2], pa.loss [1]         Proxy-Anchor alone, with entries near +-5 (exp range test)
  {plain,bias}.logits [6,4], .ce, .da, .loss [1], .grad.<name> for every trained tensor
  options: w_vpt 0.5, w_cls 0.3, vpt_norm l2 (plain) / none (bias)
"""
from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402
from vit_ref import VisionTransformer, get_arch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BACKBONE = os.path.join(REPO, "test", "fixtures", "vit_fixture.safetensors")
C, B, P_LEN, N_OTHER, START, END = 4, 6, 2, 3, 1, 2
W_VPT, W_CLS = 0.5, 0.3
ALPHA, DELTA, SCALE = 32.0, 0.1, 5.0
BIAS_KEYS = ["cls_token"] + [f"blocks.{i}.{k}" for i in range(3) for k in
                             ("norm1.weight", "norm1.bias", "attn.qkv.bias", "attn.proj.bias", "mlp.fc2.bias", "norm2.bias")]


def log1p_sum_exp(a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log(1 + sum_b mask * exp(a)) per column: logsumexp over the batch with a zero row for the 1."""
    a = a.masked_fill(mask == 0, float("-inf"))
    return torch.logsumexp(torch.cat([torch.zeros(1, a.shape[1], dtype=a.dtype), a], 0), dim=0)


def proxy_anchor(S: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    P = S.shape[1]
    return log1p_sum_exp(-ALPHA * (S - DELTA), pos).sum() / P + log1p_sum_exp(ALPHA * (S + DELTA), 1 - pos).sum() / P


def da_vpt(model: VisionTransformer, x, y, mapping, proxy, other, vpt_norm: str):
    Bn = x.shape[0]
    G2 = model.arch.grid ** 2
    h = model.embed(x)
    n_prev, j, taps = 0, 0, []
    for i, blk in enumerate(model.blocks):
        if START <= i <= END:
            P = proxy[i - START]
            P = F.normalize(P, dim=-1) if vpt_norm == "l2" else P
        else:
            P = other[j]
            j += 1
        h = torch.cat([h[:, :1], P.unsqueeze(0).expand(Bn, -1, -1), h[:, 1 + n_prev:]], 1)
        n_prev = P.shape[0]
        if START <= i <= END:
            taps.append((i, h))
        h = blk(h)
    logits = model.head(model.norm(h)[:, 0])
    ce = F.cross_entropy(logits, y)
    pos = F.one_hot(mapping[y], P_LEN).to(x.dtype)
    D = model.arch.embed_dim
    da = 0
    for i, hx in taps:
        blk = model.blocks[i]
        z = F.normalize(hx[:, -G2:].mean(1), dim=-1)
        q = F.linear(blk.norm1(hx[:, 0]), blk.attn.qkv.weight[:D], blk.attn.qkv.bias[:D])
        c = F.normalize(q, dim=-1)
        p = SCALE * F.normalize(proxy[i - START], dim=-1)
        da = da + W_VPT * proxy_anchor(z @ p.T, pos) + W_CLS * proxy_anchor(c @ p.T, pos)
    da = da / len(taps)
    return logits, ce, da


def main(out: str) -> None:
    arch = get_arch("fixture", num_classes=C)
    S, D = arch.img_size, arch.embed_dim
    sd = {k: v.double() for k, v in st.load(BACKBONE).items() if not k.startswith("head.")}
    g = torch.Generator().manual_seed(2)
    fx = {
        "x": torch.randn(B, 3, S, S, generator=g),
        "label": torch.tensor([0, 1, 2, 3, 1, 2]),
        "mapping": torch.tensor([1, 0, 0, 1]),
        "proxy_prompt_tokens": torch.randn(2, P_LEN, D, generator=g) * 0.5,
        "other_prompt_tokens": torch.randn(1, N_OTHER, D, generator=g) * 0.5,
        "head.weight": torch.randn(C, D, generator=g) * 0.2,
        "head.bias": torch.randn(C, generator=g) * 0.1,
    }
    for k in BIAS_KEYS:
        fx[f"bias.{k}"] = sd[k].float() + 0.05 * torch.randn(sd[k].shape, generator=g)

    # Proxy-Anchor alone, with similarities up to |S| = 5 (exp(32 * 5.1) overflows float32 and float64 is fine).
    Sm = (torch.rand(B, P_LEN, generator=g) * 10 - 5).double()
    Sm[0, 0], Sm[1, 1], Sm[2, 0] = 4.99, -4.99, 4.95
    pos = F.one_hot(torch.tensor([0, 1, 0, 1, 1, 1]), P_LEN).double()  # proxy 0 has positives 0 and 2 (S = +-5)
    fx["pa.S"], fx["pa.pos"] = Sm, pos
    fx["pa.loss"] = proxy_anchor(Sm, pos).view(1)

    x, y, mapping = fx["x"].double(), fx["label"], fx["mapping"]
    for variant, vpt_norm in (("plain", "l2"), ("bias", "none")):
        model = VisionTransformer(arch).double()
        weights = {**sd, "head.weight": fx["head.weight"].double(), "head.bias": fx["head.bias"].double()}
        if variant == "bias":
            weights.update({k: fx[f"bias.{k}"].double() for k in BIAS_KEYS})
        model.load_weights(weights)
        model.eval()
        named = dict(model.named_parameters())
        trained = ["head.weight", "head.bias"] + (BIAS_KEYS if variant == "bias" else [])
        for k, p in named.items():
            p.requires_grad_(k in trained)
        proxy = fx["proxy_prompt_tokens"].double().clone().requires_grad_(True)
        other = fx["other_prompt_tokens"].double().clone().requires_grad_(True)
        logits, ce, da = da_vpt(model, x, y, mapping, proxy, other, vpt_norm)
        loss = ce + da
        tensors = [proxy, other] + [named[k] for k in trained]
        grads = torch.autograd.grad(loss, tensors)
        fx[f"{variant}.logits"] = logits.detach()
        fx[f"{variant}.ce"] = ce.detach().view(1)
        fx[f"{variant}.da"] = da.detach().view(1)
        fx[f"{variant}.loss"] = loss.detach().view(1)
        for name, gr in zip(["proxy_prompt_tokens", "other_prompt_tokens"] + trained, grads):
            fx[f"{variant}.grad.{name}"] = gr
        print(f"{variant}: ce {ce.item():.6f} da {da.item():.6f}")
    fx["label"] = fx["label"].double()
    fx["mapping"] = fx["mapping"].double()
    st.save(out, {k: v.detach().float().contiguous() for k, v in fx.items()}, metadata={"source": "tools/reference/method_da_vpt.py"})
    print(f"wrote {out}: {len(fx)} tensors, {os.path.getsize(out)} bytes; PA {fx['pa.loss'].item():.6f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "test", "fixtures", "method_da_vpt.safetensors"))
