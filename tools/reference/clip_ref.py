"""Plain-torch CLIP (image tower, text tower, logits) written from the spec (docs/spec/clip.md), no
OpenAI, open_clip or Hugging Face code, plus the hand-made BPE vocabulary and an independent BPE.

Writes the parity fixtures of the TypeScript CLIP (test/clip-*.test.ts):

  DIR/clip_fixture_tokenizer.json    hand-made vocabulary as a Hugging Face tokenizer.json
  DIR/clip_fixture_openai.safetensors  random tiny CLIP weights under OpenAI / open_clip names (F16)
  DIR/clip_fixture_hf.safetensors      the same weights under Hugging Face CLIPModel names (F16)
  DIR/clip_fixture_io.safetensors      inputs and float64 reference outputs (F32)

    /usr/bin/python3 tools/reference/clip_ref.py test/fixtures

The weights are drawn in float32, rounded to float16 and stored as F16 (exact), so the files stay
small; every reference output is computed in float64 from those exact values.

Model (arch `clip_fixture`): image 32 px, patch 8 (16 patches + CLS), width 32, 2 blocks, 2 heads;
text vocabulary 518, context 16, width 16, 2 blocks, 2 heads; embedding 24. LayerNorm eps 1e-5.
"""
from __future__ import annotations

import json
import math
import os
import sys
import unicodedata
from typing import Dict, List, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

EPS = 1e-5
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

ARCH = dict(img=32, patch=8, width=32, layers=2, heads=2, vocab=518, ctx=16, twidth=16, tlayers=2, theads=2, embed=24)

# ── tokenizer ─────────────────────────────────────────────────────────────────────────────────


def bytes_to_unicode() -> Dict[int, str]:
    """CLIP's byte → printable-character map: printable Latin-1 bytes map to themselves, the rest
    to 256 + n in byte order. The vocabulary lists the symbols in THIS order (printable first)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


MERGES = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")]


def hand_vocab() -> Tuple[Dict[str, int], List[Tuple[str, str]]]:
    """ids 0–255 the byte symbols, 256–511 the same with </w>, merges 512–515, SOT 516, EOT 517."""
    symbols = list(bytes_to_unicode().values())
    vocab: Dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, MERGES


def tokenizer_json() -> dict:
    vocab, merges = hand_vocab()
    special = lambda i, s: {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": True}  # noqa: E731
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(vocab["<|startoftext|>"], "<|startoftext|>"), special(vocab["<|endoftext|>"], "<|endoftext|>")],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "Lowercase"}]},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"}, "behavior": "Removed", "invert": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", vocab["<|endoftext|>"]], "cls": ["<|startoftext|>", vocab["<|startoftext|>"]], "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<|endoftext|>", "continuing_subword_prefix": "", "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


def pre_split(text: str) -> List[str]:
    """CLIP's pre-tokenizer without the `regex` module: contractions, letter runs, single digits,
    runs of other non-space characters."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        c = next((c for c in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d") if text.startswith(c, i)), None)
        if c:
            out.append(c)
            i += len(c)
        elif unicodedata.category(ch).startswith("L"):
            j = i
            while j < len(text) and unicodedata.category(text[j]).startswith("L"):
                j += 1
            out.append(text[i:j])
            i = j
        elif unicodedata.category(ch).startswith("N"):
            out.append(ch)
            i += 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and not unicodedata.category(text[j])[0] in "LN":
                j += 1
            out.append(text[i:j])
            i = j
    return out


def bpe_encode(text: str) -> List[int]:
    """An independent BPE (CLIP's algorithm): per word, bytes as symbols with </w> on the last,
    repeatedly merge the lowest-ranked adjacent pair."""
    vocab, merges = hand_vocab()
    rank = {m: i for i, m in enumerate(merges)}
    b2u = bytes_to_unicode()
    text = " ".join(unicodedata.normalize("NFC", text).split()).lower()
    ids = [vocab["<|startoftext|>"]]
    for word in pre_split(text):
        sym = [b2u[b] for b in word.encode("utf-8")]
        sym[-1] += "</w>"
        while len(sym) > 1:
            pairs = [(rank.get((sym[k], sym[k + 1]), math.inf), k) for k in range(len(sym) - 1)]
            r, k = min(pairs)
            if r == math.inf:
                break
            sym = sym[:k] + [sym[k] + sym[k + 1]] + sym[k + 2 :]
        ids += [vocab[s] for s in sym]
    return ids + [vocab["<|endoftext|>"]]


# ── model (float64) ───────────────────────────────────────────────────────────────────────────


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + EPS) * w + b


def act_fn(x, act):
    return x * torch.sigmoid(1.702 * x) if act == "quick_gelu" else 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def resblock(x, p, heads, act, mask=None):
    """x [B, T, D]; p holds OpenAI names relative to the block: ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj."""
    B, T, D = x.shape
    dh = D // heads
    h = layer_norm(x, p["ln_1.weight"], p["ln_1.bias"])
    qkv = h @ p["attn.in_proj_weight"].T + p["attn.in_proj_bias"]  # [B, T, 3D], q | k | v
    q, k, v = (qkv[..., i * D : (i + 1) * D].reshape(B, T, heads, dh).transpose(1, 2) for i in range(3))
    s = q @ k.transpose(-1, -2) / math.sqrt(dh)
    if mask is not None:
        s = s + mask
    a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, D)
    x = x + a @ p["attn.out_proj.weight"].T + p["attn.out_proj.bias"]
    h = layer_norm(x, p["ln_2.weight"], p["ln_2.bias"])
    m = act_fn(h @ p["mlp.c_fc.weight"].T + p["mlp.c_fc.bias"], act) @ p["mlp.c_proj.weight"].T + p["mlp.c_proj.bias"]
    return x + m


def sub(sd, prefix):
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def encode_image(sd, x, act, prompts=None):
    """x [B, 3, S, S] normalised → [B, E]. `prompts` [1, N, D] go after CLS, after ln_pre (DAPT)."""
    a = ARCH
    w = sd["visual.conv1.weight"]
    B = x.shape[0]
    g = a["img"] // a["patch"]
    patches = x.reshape(B, 3, g, a["patch"], g, a["patch"]).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, -1)
    tok = patches @ w.reshape(w.shape[0], -1).T  # conv1 without bias
    cls = sd["visual.class_embedding"].expand(B, 1, -1)
    h = torch.cat([cls, tok], 1) + sd["visual.positional_embedding"]
    h = layer_norm(h, sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    if prompts is not None:
        h = torch.cat([h[:, :1], prompts.expand(B, -1, -1), h[:, 1:]], 1)
    for i in range(a["layers"]):
        h = resblock(h, sub(sd, f"visual.transformer.resblocks.{i}."), a["heads"], act)
    return layer_norm(h[:, 0], sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]


def encode_text_embeds(sd, e, ids, act):
    """e [C, L, W] token embeddings (possibly with learned context) → [C, E], pooled at the first EOT."""
    L = e.shape[1]
    h = e + sd["positional_embedding"][:L]
    mask = torch.full((L, L), float("-inf"), dtype=h.dtype).triu(1)
    for i in range(ARCH["tlayers"]):
        h = resblock(h, sub(sd, f"transformer.resblocks.{i}."), ARCH["theads"], act, mask)
    h = layer_norm(h, sd["ln_final.weight"], sd["ln_final.bias"])
    eot = ARCH["vocab"] - 1
    first = torch.tensor([int((row == eot).nonzero()[0]) for row in ids])
    return h[torch.arange(h.shape[0]), first] @ sd["text_projection"]


def encode_text(sd, ids, act):
    return encode_text_embeds(sd, sd["token_embedding.weight"][ids], ids, act)


def normalize(x):
    return x / x.norm(dim=-1, keepdim=True)


def logits(sd, img, txt):
    return sd["logit_scale"].exp() * normalize(img) @ normalize(txt).T


# ── weights ───────────────────────────────────────────────────────────────────────────────────


def random_weights(seed=0) -> Dict[str, torch.Tensor]:
    """OpenAI-named random weights, f16-exact. Scales keep activations O(1) through two blocks."""
    gen = torch.Generator().manual_seed(seed)
    a = ARCH
    n = lambda *s, std=1.0, mean=0.0: (mean + std * torch.randn(*s, generator=gen)).half().float()  # noqa: E731
    sd: Dict[str, torch.Tensor] = {}

    def block(prefix, d):
        sd[prefix + "ln_1.weight"] = n(d, std=0.1, mean=1)
        sd[prefix + "ln_1.bias"] = n(d, std=0.1)
        sd[prefix + "attn.in_proj_weight"] = n(3 * d, d, std=d ** -0.5)
        sd[prefix + "attn.in_proj_bias"] = n(3 * d, std=0.1)
        sd[prefix + "attn.out_proj.weight"] = n(d, d, std=d ** -0.5)
        sd[prefix + "attn.out_proj.bias"] = n(d, std=0.1)
        sd[prefix + "ln_2.weight"] = n(d, std=0.1, mean=1)
        sd[prefix + "ln_2.bias"] = n(d, std=0.1)
        sd[prefix + "mlp.c_fc.weight"] = n(4 * d, d, std=d ** -0.5)
        sd[prefix + "mlp.c_fc.bias"] = n(4 * d, std=0.1)
        sd[prefix + "mlp.c_proj.weight"] = n(d, 4 * d, std=(4 * d) ** -0.5)
        sd[prefix + "mlp.c_proj.bias"] = n(d, std=0.1)

    D, W, E, p = a["width"], a["twidth"], a["embed"], a["patch"]
    T = (a["img"] // p) ** 2 + 1
    sd["visual.conv1.weight"] = n(D, 3, p, p, std=(3 * p * p) ** -0.5)
    sd["visual.class_embedding"] = n(D, std=0.5)
    sd["visual.positional_embedding"] = n(T, D, std=0.5)
    sd["visual.ln_pre.weight"] = n(D, std=0.1, mean=1)
    sd["visual.ln_pre.bias"] = n(D, std=0.1)
    for i in range(a["layers"]):
        block(f"visual.transformer.resblocks.{i}.", D)
    sd["visual.ln_post.weight"] = n(D, std=0.1, mean=1)
    sd["visual.ln_post.bias"] = n(D, std=0.1)
    sd["visual.proj"] = n(D, E, std=D ** -0.5)
    sd["token_embedding.weight"] = n(a["vocab"], W, std=0.5)
    sd["positional_embedding"] = n(a["ctx"], W, std=0.5)
    for i in range(a["tlayers"]):
        block(f"transformer.resblocks.{i}.", W)
    sd["ln_final.weight"] = n(W, std=0.1, mean=1)
    sd["ln_final.bias"] = n(W, std=0.1)
    sd["text_projection"] = n(W, E, std=W ** -0.5)
    sd["logit_scale"] = torch.tensor(math.log(1 / 0.07)).half().float()  # CLIP's initial temperature
    return sd


def to_hf(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """OpenAI names → Hugging Face CLIPModel names: q/k/v split, projections stored transposed."""
    out: Dict[str, torch.Tensor] = {}

    def block(src, dst, d):
        m = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        for a, b in m.items():
            for t in ("weight", "bias"):
                out[f"{dst}.{b}.{t}"] = sd[f"{src}.{a}.{t}"]
        for j, x in enumerate("qkv"):
            out[f"{dst}.self_attn.{x}_proj.weight"] = sd[f"{src}.attn.in_proj_weight"][j * d : (j + 1) * d]
            out[f"{dst}.self_attn.{x}_proj.bias"] = sd[f"{src}.attn.in_proj_bias"][j * d : (j + 1) * d]

    a = ARCH
    out["vision_model.embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    out["vision_model.embeddings.class_embedding"] = sd["visual.class_embedding"]
    out["vision_model.embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    out["vision_model.embeddings.position_ids"] = torch.arange((a["img"] // a["patch"]) ** 2 + 1)[None]  # a non-weight key HF files carry
    for t in ("weight", "bias"):
        out[f"vision_model.pre_layrnorm.{t}"] = sd[f"visual.ln_pre.{t}"]
        out[f"vision_model.post_layernorm.{t}"] = sd[f"visual.ln_post.{t}"]
        out[f"text_model.final_layer_norm.{t}"] = sd[f"ln_final.{t}"]
    for i in range(a["layers"]):
        block(f"visual.transformer.resblocks.{i}", f"vision_model.encoder.layers.{i}", a["width"])
    for i in range(a["tlayers"]):
        block(f"transformer.resblocks.{i}", f"text_model.encoder.layers.{i}", a["twidth"])
    out["visual_projection.weight"] = sd["visual.proj"].T.contiguous()
    out["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    out["text_model.embeddings.position_embedding.weight"] = sd["positional_embedding"]
    out["text_model.embeddings.position_ids"] = torch.arange(a["ctx"])[None]
    out["text_projection.weight"] = sd["text_projection"].T.contiguous()
    out["logit_scale"] = sd["logit_scale"]
    return out


TEXTS = ["A cat & a  DOG!", "cats, 42", "a dog", "dog"]
GOLDEN = {"A cat & a  DOG!": [516, 320, 513, 261, 320, 515, 256, 517], "cats, 42": [516, 512, 83, 338, 267, 275, 273, 517]}


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for t, want in GOLDEN.items():
        got = bpe_encode(t)
        assert got == want, f"independent BPE gives {got} for {t!r}, the spec says {want}"
    with open(os.path.join(out_dir, "clip_fixture_tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")

    sd32 = random_weights(0)
    meta = {"arch": "clip_fixture", "command": "/usr/bin/python3 tools/reference/clip_ref.py test/fixtures", "note": "random weights (f16-exact); activation per test"}
    safetensors_io.save(os.path.join(out_dir, "clip_fixture_openai.safetensors"), sd32, metadata=meta, dtype="F16")
    hf = to_hf(sd32)
    safetensors_io.save(os.path.join(out_dir, "clip_fixture_hf.safetensors"), hf, metadata=meta, dtype="F16")
    back = safetensors_io.load(os.path.join(out_dir, "clip_fixture_openai.safetensors"))
    assert all(torch.equal(back[k], sd32[k]) for k in sd32), "F16 round trip is not exact"

    sd = {k: v.double() for k, v in sd32.items()}
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, ARCH["img"], ARCH["img"], generator=gen)
    ctx = ARCH["ctx"]
    ids0 = torch.zeros(len(TEXTS), ctx, dtype=torch.long)
    idsE = torch.full((len(TEXTS), ctx), ARCH["vocab"] - 1, dtype=torch.long)
    for r, t in enumerate(TEXTS):
        ids = bpe_encode(t)
        ids0[r, : len(ids)] = torch.tensor(ids)
        idsE[r, : len(ids)] = torch.tensor(ids)
    io: Dict[str, torch.Tensor] = {"input": x, "text_ids": ids0.float(), "text_ids_eot": idsE.float()}
    for act in ("quick_gelu", "gelu"):
        img = encode_image(sd, x.double(), act)
        txt = encode_text(sd, ids0, act)
        txtE = encode_text(sd, idsE, act)
        assert (txt - txtE).abs().max() < 1e-12, "0- and EOT-padding must pool the same row"
        cut = int(max((row == ARCH["vocab"] - 1).nonzero()[0] for row in ids0)) + 1
        txtCut = encode_text(sd, ids0[:, :cut], act)
        assert (txt - txtCut).abs().max() < 1e-12, "cutting the text after the last EOT must not change the features"
        io[f"image_features.{act}"] = img.float()
        io[f"text_features.{act}"] = txt.float()
        io[f"logits.{act}"] = logits(sd, img, txt).float()
    d = (io["logits.gelu"] - io["logits.quick_gelu"]).abs().max()
    io_meta = {"command": meta["command"], "texts": json.dumps(TEXTS), "gelu_vs_quick_gelu_max_logit_diff": f"{float(d):.4g}"}
    safetensors_io.save(os.path.join(out_dir, "clip_fixture_io.safetensors"), io, metadata=io_meta)
    print(json.dumps({"texts": TEXTS, "gelu_vs_quick_gelu": float(d), "logits": io["logits.quick_gelu"].tolist()}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures")
