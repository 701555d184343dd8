#!/usr/bin/python3
"""Reference SPT (Self-Prompt Tuning) init statistics and SPT-deep forward on the `fixture` ViT.

Usage:  /usr/bin/python3 tools/reference/method_spt.py [OUT]      (default: test/fixtures/method_spt.safetensors)

Written from docs/spec/spt.md, not from the TypeScript code:
  * tokens (spec "Init", the official RepCatcher): forward hooks on the frozen, prompt-free backbone record
    layer 0 = output of patch_embed ([B, T, D], before CLS and pos_embed) and layer i >= 1 = output of
    blocks[i-1] (the input of block i) with the CLS row removed.
  * mean / max pooling: each image's raster-ordered T tokens in N-1 contiguous windows of w = T // (N-1)
    tokens plus one final window of the remaining T mod w tokens (none when that is 0); every window is
    averaged (element-wise max), giving [B * windows, D] in (image, window) order. The random "keep N"
    step draws from our RNG, so the fixture stores every pooled vector and the TS test checks them all.
  * SPT-deep forward (spec "Forward and loss", identical to VPT-deep): patch_embed -> cat CLS -> + pos_embed -> prompts
    after CLS (no pos) -> blocks; before block i >= 1, x = cat(x[:, :1], P_i, x[:, 1+N:]) -> norm ->
    x[:, 0] -> head; no prompt dropout. Loss: CE, mean over the batch.
    Prompts for the parity check: layer i's mean-pooled vectors at rows `pick` (N = 4), so the logits
    follow from the captured statistics end to end.

Fixture contents (float32; math in float64):
  x [3,3,32,32]                 a normalised input batch (N(0, 1))
  label [3]                     class indices (float)
  tokens.{0,1,2} [3,16,96]      the layer tokens above (T = 16 at patch 8, D = 96, depth 3)
  mean4.{i}, max4.{i} [12,96]   N = 4: w = 5, 3 windows of 5 + a last window of 1 -> 4 per image
  mean5.{i}, max5.{i} [12,96]   N = 5: w = 4, 4 windows of 4, remainder 0 -> 4 per image
  pick [4]                      rows of mean4.{i} used as layer i's prompts
  head.weight [4,96], head.bias [4]
  logits [3,4], loss [1], grad.prompt_embeddings [1,4,96], grad.deep_prompt_embeddings [2,4,96],
  grad.head.weight, grad.head.bias
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
NUM_CLASSES = 4
BATCH = 3


def capture(model: VisionTransformer, x: torch.Tensor) -> list:
    """RepCatcher: layer 0 from patch_embed, layer i from blocks[i-1] (CLS dropped)."""
    got = {}
    hooks = [model.patch_embed.register_forward_hook(lambda m, i, o: got.__setitem__(0, o.detach().clone()))]
    for i in range(1, len(model.blocks)):
        hooks.append(model.blocks[i - 1].register_forward_hook(lambda m, inp, o, i=i: got.__setitem__(i, o[:, 1:].detach().clone())))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return [got[i] for i in range(len(model.blocks))]


def pool(X: torch.Tensor, n: int, kind: str) -> torch.Tensor:
    """[B, T, D] -> [B * windows, D]: N-1 windows of T // (N-1), then the last T mod w tokens if any."""
    B, T, D = X.shape
    w = T // (n - 1)
    wins = [X[:, k * w:(k + 1) * w] for k in range(n - 1)]
    rest = T % w
    assert T - (n - 1) * w == rest, "the spec's 'last window holds the remaining T - (N-1)w tokens' reading needs T - (N-1)w < w"
    if rest:
        wins.append(X[:, T - rest:])
    red = (lambda t: t.mean(dim=1)) if kind == "mean" else (lambda t: t.amax(dim=1))
    return torch.stack([red(t) for t in wins], dim=1).reshape(B * len(wins), D)


def spt_deep_logits(model: VisionTransformer, x: torch.Tensor, P0: torch.Tensor, Pd: torch.Tensor) -> torch.Tensor:
    B = x.shape[0]
    N = P0.shape[1]
    h = model.embed(x)
    h = torch.cat([h[:, :1], P0.expand(B, -1, -1), h[:, 1:]], dim=1)
    for i, blk in enumerate(model.blocks):
        if i >= 1:
            h = torch.cat([h[:, :1], Pd[i - 1].unsqueeze(0).expand(B, -1, -1), h[:, 1 + N:]], dim=1)
        h = blk(h)
    return model.head(model.norm(h)[:, 0])


def main(out: str) -> None:
    arch = get_arch("fixture", num_classes=NUM_CLASSES)
    S, D, L = arch.img_size, arch.embed_dim, arch.depth
    sd = {k: v.double() for k, v in st.load(BACKBONE).items() if not k.startswith("head.")}
    g = torch.Generator().manual_seed(0)
    head_w = torch.randn(NUM_CLASSES, D, generator=g) * 0.02 * 10  # larger than init so the head matters
    head_b = torch.randn(NUM_CLASSES, generator=g) * 0.1
    model = VisionTransformer(arch).double()
    model.load_weights({**sd, "head.weight": head_w.double(), "head.bias": head_b.double()})
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)

    x = torch.randn(BATCH, 3, S, S, generator=g)
    label = torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)
    tokens = capture(model, x.double())
    T = arch.grid ** 2
    assert all(t.shape == (BATCH, T, D) for t in tokens)
    # Hooked block outputs equal a manual pass: embed, then blocks (the capture is of the prompt-free trunk).
    with torch.no_grad():
        h = model.embed(x.double())
        for i in range(1, L):
            h = model.blocks[i - 1](h)
            assert torch.allclose(h[:, 1:], tokens[i])
        assert torch.allclose(model.patch_embed(x.double()), tokens[0])

    fx = {"x": x, "label": label.double(), "head.weight": head_w, "head.bias": head_b}
    for i, t in enumerate(tokens):
        fx[f"tokens.{i}"] = t
        for n in (4, 5):
            for kind in ("mean", "max"):
                fx[f"{kind}{n}.{i}"] = pool(t, n, kind)
    assert fx["mean4.0"].shape == (BATCH * 4, D) and fx["mean5.0"].shape == (BATCH * 4, D)

    pick = torch.tensor([5, 0, 11, 2])
    P0 = fx["mean4.0"][pick].unsqueeze(0).clone().requires_grad_(True)
    Pd = torch.stack([fx[f"mean4.{i}"][pick] for i in range(1, L)]).clone().requires_grad_(True)
    model.head.weight.requires_grad_(True)
    model.head.bias.requires_grad_(True)
    logits = spt_deep_logits(model, x.double(), P0, Pd)
    loss = F.cross_entropy(logits, label)
    grads = torch.autograd.grad(loss, [P0, Pd, model.head.weight, model.head.bias])
    fx.update({
        "pick": pick.double(),
        "logits": logits.detach(),
        "loss": loss.detach().view(1),
        "grad.prompt_embeddings": grads[0],
        "grad.deep_prompt_embeddings": grads[1],
        "grad.head.weight": grads[2],
        "grad.head.bias": grads[3],
    })
    st.save(out, {k: v.detach().float().contiguous() for k, v in fx.items()}, metadata={"source": "tools/reference/method_spt.py"})
    print(f"wrote {out}: {len(fx)} tensors, {os.path.getsize(out)} bytes; loss {loss.item():.6f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "test", "fixtures", "method_spt.safetensors"))
