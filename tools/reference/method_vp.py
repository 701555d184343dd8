#!/usr/bin/python3
"""Reference VP pixel padding prompts (inner and outer) on the `fixture` ViT, and the parity fixture.

Usage:  /usr/bin/python3 tools/reference/method_vp.py [OUT]      (default: test/fixtures/method_vp.safetensors)

Written from docs/spec/vp.md, not from the TypeScript code:
  * inner (official VP, `PadPrompter`): four strips pad_up/pad_down [1,3,p,S], pad_left/pad_right [1,3,S-2p,p];
    prompt = cat([pad_up, cat([pad_left, zeros(S-2p), pad_right], W), pad_down], H), added to the image AFTER
    normalisation: x' = normalize(x) + prompt.
  * outer (EVP, `UCSC-VLAA/EVP/main.py`, spec "Forward", parameterisation A): the [0,1] image is shrunk to S-2p,
    zero-padded by p to S, a frame-masked delta is added, then normalised: x' = normalize(pad0(shrink(x)) + delta).
    The TypeScript side keeps the frame in normalised units (P = (delta - mean)/std on the frame) and shrinks
    the normalised image; both are the same function, which this fixture checks: the reference below is the
    EVP form literally, fed delta = P*std + mean.
    Shrink: F.interpolate(mode='bilinear', align_corners=False, antialias=True) (torch's PIL-style filter),
    and the plain two-tap variant antialias=False.
  * head: final norm -> CLS -> Linear(D, C) (a ViT has no CLIP text classifier); loss CE, mean over the batch.
  * p = round(30 * S / 224) = 4 at S = 32 (VP's 30 px at 224, scaled); 3*(S^2 - (S-2p)^2) = 1344 prompt values.
  * init (VP): torch.randn, i.e. N(0, 1) in normalised-pixel units.

Fixture contents (float32; math in float64):
  image [4,3,32,32]       pixel values 0..255 (integers, so the same batch also feeds a uint8 export)
  label [4]               class indices (float)
  {inner,outer}.<pad>     the strips, N(0, 1) (VP's init scale, drawn from a torch.Generator seeded 0)
  head.weight [4,96], head.bias [4]
  {inner,outer,outer_plain}.logits [4,4]; outer_plain uses the outer strips with antialias=False
  {inner,outer}.loss [1]  CE of the logits against `label`
  {inner,outer}.grad.<name>  d loss / d tensor for the four strips and the head
  resize_aa [24,32], resize_plain [24,32]  torch's 1-D shrink weights 32 -> 24 (F.interpolate of the identity)
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
# vit_fixture_patch8_32 in compiler/backbones/vit-variants.ts uses ImageNet normalisation.
MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
NUM_CLASSES = 4
BATCH = 4
PADS = ("pad_up", "pad_down", "pad_left", "pad_right")


def pad_size(img: int) -> int:
    return max(1, round(30 * img / 224))


class PadPrompter(torch.nn.Module):
    """VP's PadPrompter: a frame of width p around a zero (S-2p)^2 centre."""

    def __init__(self, img: int, p: int, g: torch.Generator, dtype=torch.float64):
        super().__init__()
        self.img, self.p, self.base = img, p, img - 2 * p
        self.pad_up = torch.nn.Parameter(torch.randn(1, 3, p, img, generator=g).to(dtype))
        self.pad_down = torch.nn.Parameter(torch.randn(1, 3, p, img, generator=g).to(dtype))
        self.pad_left = torch.nn.Parameter(torch.randn(1, 3, self.base, p, generator=g).to(dtype))
        self.pad_right = torch.nn.Parameter(torch.randn(1, 3, self.base, p, generator=g).to(dtype))

    def prompt(self) -> torch.Tensor:
        base = torch.zeros(1, 3, self.base, self.base, dtype=self.pad_up.dtype)
        mid = torch.cat([self.pad_left, base, self.pad_right], dim=3)
        return torch.cat([self.pad_up, mid, self.pad_down], dim=2)

    def forward(self, x):
        return x + self.prompt()


def normalize(x01):
    return (x01 - MEAN) / STD


def inner_input(x01, prompter: PadPrompter):
    return prompter(normalize(x01))


def outer_input(x01, prompter: PadPrompter, antialias: bool):
    """EVP: normalize(pad0(shrink(x)) + delta), delta = frame-masked; delta = P*std + mean on the frame."""
    p, s = prompter.p, prompter.base
    small = F.interpolate(x01, size=(s, s), mode="bilinear", align_corners=False, antialias=antialias)
    padded = F.pad(small, (p, p, p, p), value=0.0)
    mask = torch.ones(1, 1, prompter.img, prompter.img, dtype=x01.dtype)
    mask[..., p:-p, p:-p] = 0
    delta = (prompter.prompt() * STD + MEAN) * mask
    return normalize(padded + delta)


def resize_weights(n_in: int, n_out: int, antialias: bool) -> torch.Tensor:
    """torch's 1-D bilinear shrink as a matrix [n_out, n_in]: interpolate each unit vector."""
    eye = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, 1, n_in)
    cols = F.interpolate(eye, size=(1, n_out), mode="bilinear", align_corners=False, antialias=antialias)
    return cols.view(n_in, n_out).t().contiguous()


def main(out: str) -> None:
    assert 3 * (224 ** 2 - 164 ** 2) == 69840 and pad_size(224) == 30  # docs/spec/vp.md "Tensors"
    arch = get_arch("fixture")
    S, D = arch.img_size, arch.embed_dim
    p = pad_size(S)
    sd = st.load(BACKBONE)
    model = VisionTransformer(get_arch("fixture", num_classes=NUM_CLASSES)).double()
    g = torch.Generator().manual_seed(0)
    head_w = torch.randn(NUM_CLASSES, D, generator=g) * (2 / NUM_CLASSES) ** 0.5
    head_b = torch.randn(NUM_CLASSES, generator=g) * 0.1
    sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    model.load_weights({**{k: v.double() for k, v in sd.items()}, "head.weight": head_w.double(), "head.bias": head_b.double()})
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    model.head.weight.requires_grad_(True)
    model.head.bias.requires_grad_(True)

    image = torch.randint(0, 256, (BATCH, 3, S, S), generator=g).double()
    label = torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)
    x01 = image / 255
    fx = {"image": image, "label": label.double(), "head.weight": head_w, "head.bias": head_b}

    prompters = {"inner": PadPrompter(S, p, g), "outer": PadPrompter(S, p, g)}
    assert sum(q.numel() for q in prompters["inner"].parameters()) == 3 * (S * S - (S - 2 * p) ** 2)
    for variant, pr in prompters.items():
        xin = inner_input(x01, pr) if variant == "inner" else outer_input(x01, pr, antialias=True)
        logits = model(xin)
        loss = F.cross_entropy(logits, label)
        tensors = [getattr(pr, n) for n in PADS] + [model.head.weight, model.head.bias]
        grads = torch.autograd.grad(loss, tensors)
        for n in PADS:
            fx[f"{variant}.{n}"] = getattr(pr, n).detach()
        fx[f"{variant}.logits"] = logits.detach()
        fx[f"{variant}.loss"] = loss.detach().view(1)
        for n, gr in zip(list(PADS) + ["head.weight", "head.bias"], grads):
            fx[f"{variant}.grad.{n}"] = gr
    with torch.no_grad():
        fx["outer_plain.logits"] = model(outer_input(x01, prompters["outer"], antialias=False))
        # The normalised-space form the TS side runs: shrink(normalize(x)) zero-framed, plus P.
        pr = prompters["outer"]
        for aa in (True, False):
            R = resize_weights(S, S - 2 * p, aa)
            assert torch.allclose(R.sum(1), torch.ones(S - 2 * p, dtype=torch.float64)), "resize rows must sum to 1"
            M = torch.zeros(S, S, dtype=torch.float64)
            M[p:S - p] = R
            alt = M @ normalize(x01) @ M.t() + pr.prompt()
            d = (alt - outer_input(x01, pr, aa)).abs().max().item()
            print(f"outer antialias={aa}: EVP form vs normalised-space shrink + P: max|d| = {d:.2e}")
            assert d < 1e-12
        fx["resize_aa"] = resize_weights(S, S - 2 * p, True)
        fx["resize_plain"] = resize_weights(S, S - 2 * p, False)
        # Sanity: the prompts matter, and the two shrinks differ.
        base = model(normalize(x01))
        for k in ("inner.logits", "outer.logits", "outer_plain.logits"):
            print(f"{k}: max|logits - unprompted| = {(fx[k] - base).abs().max().item():.3f}")
        assert (fx["outer.logits"] - fx["outer_plain.logits"]).abs().max() > 1e-3
        # Central finite difference of one frame value (float64) against autograd.
        pr = prompters["inner"]
        eps = 1e-6
        vals = []
        for sign in (1, -1):
            pr.pad_left.data[0, 1, 3, 2] += sign * eps
            vals.append(F.cross_entropy(model(inner_input(x01, pr)), label).item())
            pr.pad_left.data[0, 1, 3, 2] -= sign * eps
        fd = (vals[0] - vals[1]) / (2 * eps)
        ad = fx["inner.grad.pad_left"][0, 1, 3, 2].item()
        print(f"finite difference vs autograd (inner.pad_left[0,1,3,2]): {fd:.8f} vs {ad:.8f}")
        assert abs(fd - ad) < 1e-6 * max(1.0, abs(ad))

    fx = {k: v.detach().to(torch.float32).contiguous() for k, v in fx.items()}
    st.save(out, fx, metadata={
        "weights": "vit_fixture.safetensors (head dropped; head.weight/head.bias stored here)",
        "pad_size": str(p),
        "mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225",
        "inner": "normalize(image/255) + PadPrompter frame",
        "outer": "normalize(pad0(interpolate(image/255, S-2p, bilinear, align_corners=False, antialias=True)) + delta), delta = P*std + mean on the frame",
        "outer_plain": "outer with antialias=False",
        "computed_in": "float64, stored float32",
        "generator": "tools/reference/method_vp.py (torch.Generator seed 0)",
        "torch": torch.__version__,
    })
    back = st.load(out)
    assert set(back) == set(fx) and all(torch.equal(back[k], fx[k]) for k in fx)
    print(f"{out}: {os.path.getsize(out)} bytes, {len(fx)} tensors")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "test", "fixtures", "method_vp.safetensors"))
