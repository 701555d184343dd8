"""The CLIP methods on the fixture CLIP, in float64, from the spec (docs/spec/clip.md, docs/spec/dapt.md),
for test/method-clip-reference.test.ts:

  zero-shot         100-style CLIP logits against normalize(mean_t normalize(text(template_t(c))))
  coop              the same against the text tower fed [SOT, ctx (4), class tokens, ".", EOT]
  clip-vp-inner     zero-shot head, image x + P (P: the 4-px frame of four strips, zero centre)
  clip-vp-outer     zero-shot head, image pad0(shrink_aa(x, 24), 4) + P
  clip-vpt-shallow  zero-shot head, 3 prompts after CLS, after ln_pre, no position embedding
  dapt              VPT-shallow prompts + CoOp context; loss CE + bv·MSE(f, proto_y) + bt·mean_{i<j} exp(-t·|ti - tj|^2)

    /usr/bin/python3 tools/reference/method_clip.py test/fixtures/method_clip.safetensors

Everything is computed from the f16-exact fixture weights (clip_fixture_openai.safetensors, QuickGELU)
and stored as float32: inputs, the trained tensors, logits per method, DAPT's and CoOp's loss and
their gradients (mean cross-entropy over the batch, no label smoothing).
"""
from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref as R  # noqa: E402
import safetensors_io  # noqa: E402

ACT = "quick_gelu"
CLASSES = ["cat", "dog", "cat dog", "a dog!"]  # the TS task cleans "cat_dog" to "cat dog"
TEMPLATES = ["a {}.", "{} & cat"]
N_CTX, N_VIS, PAD = 4, 3, 4
BETA_V, BETA_T, TAU = 10.0, 1.0, 2.0


def pad_ids(ids, ctx=R.ARCH["ctx"]):
    out = torch.zeros(len(ids), ctx, dtype=torch.long)
    for r, s in enumerate(ids):
        out[r, : len(s)] = torch.tensor(s)
    return out


def zero_shot_classes(sd):
    per = [R.normalize(R.encode_text(sd, pad_ids([R.bpe_encode(t.replace("{}", c)) for c in CLASSES]), ACT)) for t in TEMPLATES]
    return R.normalize(torch.stack(per).mean(0))


def context_classes(sd, ctx):
    ids = pad_ids([R.bpe_encode("X " * N_CTX + c + ".") for c in CLASSES])
    emb = sd["token_embedding.weight"][ids]
    emb = torch.cat([emb[:, :1], ctx.expand(len(CLASSES), -1, -1), emb[:, 1 + N_CTX :]], 1)
    return R.normalize(R.encode_text_embeds(sd, emb, ids, ACT))


def frame(strips):
    up, down, left, right = strips
    s = 32 - 2 * PAD
    mid = torch.cat([left, torch.zeros(1, 3, s, s, dtype=up.dtype), right], 3)
    return torch.cat([up, mid, down], 2)


def head(sd, img, classes):
    return sd["logit_scale"].exp() * R.normalize(img) @ classes.T


def main(out: str) -> None:
    sd = {k: v.double() for k, v in safetensors_io.load(os.path.join(os.path.dirname(out), "clip_fixture_openai.safetensors")).items()}
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 3, 32, 32, generator=g, dtype=torch.float64).float().double()
    y = torch.tensor([0, 3, 1])
    D, W, E = R.ARCH["width"], R.ARCH["twidth"], R.ARCH["embed"]
    s = 32 - 2 * PAD
    t = lambda *shape, std=1.0: (std * torch.randn(*shape, generator=g, dtype=torch.float64)).float().double()  # noqa: E731
    strips = [t(1, 3, PAD, 32), t(1, 3, PAD, 32), t(1, 3, s, PAD), t(1, 3, s, PAD)]
    vis = t(1, N_VIS, D, std=0.5).requires_grad_()
    ctx = t(N_CTX, W, std=0.5).requires_grad_()
    protos = R.normalize(t(len(CLASSES), E)) * 0.8

    zs = zero_shot_classes(sd)
    res = {"input": x, "labels": y.double(), "pad_up": strips[0], "pad_down": strips[1], "pad_left": strips[2], "pad_right": strips[3],
           "prompt_embeddings": vis.detach(), "text_ctx": ctx.detach(), "prototypes": protos, "zero_shot_classes": zs}
    res["logits.zero-shot"] = head(sd, R.encode_image(sd, x, ACT), zs)
    res["logits.clip-vp-inner"] = head(sd, R.encode_image(sd, x + frame(strips), ACT), zs)
    shrunk = F.pad(F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True), (PAD,) * 4)
    res["logits.clip-vp-outer"] = head(sd, R.encode_image(sd, shrunk + frame(strips), ACT), zs)
    res["logits.clip-vpt-shallow"] = head(sd, R.encode_image(sd, x, ACT, prompts=vis.detach()), zs)

    coop_logits = head(sd, R.encode_image(sd, x, ACT), context_classes(sd, ctx))
    coop_loss = F.cross_entropy(coop_logits, y)
    (res["coop.grad.text_ctx"],) = torch.autograd.grad(coop_loss, [ctx])
    res["logits.coop"], res["coop.loss"] = coop_logits.detach(), coop_loss.detach().reshape(1)

    img = R.normalize(R.encode_image(sd, x, ACT, prompts=vis))
    txt = context_classes(sd, ctx)
    logits = sd["logit_scale"].exp() * img @ txt.T
    intra = F.mse_loss(img, protos[y])
    inter = torch.exp(-TAU * torch.pdist(txt) ** 2).mean()
    loss = F.cross_entropy(logits, y) + BETA_V * intra + BETA_T * inter
    gv, gc = torch.autograd.grad(loss, [vis, ctx])
    res.update({"logits.dapt": logits.detach(), "dapt.loss": loss.detach().reshape(1), "dapt.intra": intra.detach().reshape(1), "dapt.inter": inter.detach().reshape(1),
                "dapt.grad.prompt_embeddings": gv, "dapt.grad.text_ctx": gc})
    meta = {"command": "/usr/bin/python3 tools/reference/method_clip.py test/fixtures/method_clip.safetensors", "classes": ",".join(CLASSES), "templates": "|".join(TEMPLATES),
            "beta_intra": str(BETA_V), "beta_inter": str(BETA_T), "tau": str(TAU), "act": ACT}
    safetensors_io.save(out, {k: v.detach().float() for k, v in res.items()}, metadata=meta)
    print({k: [round(float(v), 5) for v in res[k].flatten()[:4]] for k in res if k.startswith(("logits", "dapt.loss", "coop.loss"))})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/method_clip.safetensors")
