"""Plain-torch Vision Transformer with timm VisionTransformer semantics and state-dict names.

Written from the spec (docs/spec/vit.md, docs/spec/vpt.md "Forward"); no timm code.

State dict (D = embed_dim, G = img_size // patch_size, C = num_classes):
  patch_embed.proj.weight [D,3,p,p], patch_embed.proj.bias [D]
  cls_token [1,1,D], pos_embed [1,1+G*G,D]
  blocks.{i}.norm1.{weight,bias} [D]
  blocks.{i}.attn.qkv.weight [3D,D], .bias [3D]
  blocks.{i}.attn.proj.weight [D,D], .bias [D]
  blocks.{i}.norm2.{weight,bias} [D]
  blocks.{i}.mlp.fc1.weight [4D,D], .bias [4D]
  blocks.{i}.mlp.fc2.weight [D,4D], .bias [D]
  norm.{weight,bias} [D]
  head.weight [C,D], head.bias [C]
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-6


@dataclass(frozen=True)
class ViTArch:
    img_size: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    num_classes: int = 1000
    mlp_ratio: float = 4.0

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    def metadata(self) -> Dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


ARCHS: Dict[str, ViTArch] = {
    "vit_tiny_patch16_224": ViTArch(224, 16, 192, 12, 3),
    "vit_small_patch16_224": ViTArch(224, 16, 384, 12, 6),
    "vit_base_patch16_224": ViTArch(224, 16, 768, 12, 12),
    "fixture": ViTArch(32, 8, 96, 3, 3, num_classes=10),
    "vit_micro_patch4_32": ViTArch(32, 4, 96, 6, 3, num_classes=5),
}


def get_arch(name: str, **overrides) -> ViTArch:
    a = ARCHS[name]
    return replace(a, **overrides) if overrides else a


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x):  # [B,3,H,W] -> [B, G*G, D], row-major over the grid
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x):
        B, N, D = x.shape
        # qkv output channel layout: [3, H, dh] (q block, then k, then v; heads contiguous inside)
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B,H,N,dh]
        att = (q * self.scale) @ k.transpose(-2, -1)
        att = att.softmax(dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj(o)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU (approximate='none')


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


def resample_abs_pos_embed(pos: torch.Tensor, new_grid: int) -> torch.Tensor:
    """pos [1, 1+G*G, D] -> [1, 1+G'*G', D]; CLS row kept, grid resampled bicubic (align_corners=False,
    no antialias)."""
    n = pos.shape[1] - 1
    g = int(round(math.sqrt(n)))
    assert g * g == n, f"pos_embed grid not square: {n}"
    if g == new_grid:
        return pos
    D = pos.shape[2]
    cls, grid = pos[:, :1], pos[:, 1:]
    orig_dtype = grid.dtype
    grid = grid.reshape(1, g, g, D).permute(0, 3, 1, 2)
    if grid.dtype not in (torch.float32, torch.float64):
        grid = grid.float()
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False, antialias=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, D).to(orig_dtype)
    return torch.cat([cls, grid], dim=1)


class VisionTransformer(nn.Module):
    def __init__(self, arch: ViTArch):
        super().__init__()
        self.arch = arch
        D = arch.embed_dim
        self.patch_embed = PatchEmbed(arch.patch_size, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + arch.grid * arch.grid, D))
        self.blocks = nn.ModuleList([Block(D, arch.num_heads, arch.mlp_ratio) for _ in range(arch.depth)])
        self.norm = nn.LayerNorm(D, eps=LN_EPS)
        self.head = nn.Linear(D, arch.num_classes)

    # ---- init -------------------------------------------------------------
    def init_timm_like(self, generator: Optional[torch.Generator] = None):
        """Random init in the spirit of timm's default: every weight matrix / conv kernel / pos_embed / cls_token
        ~ normal(0, .02) truncated at ±2 std (re-drawn), all biases zero, LayerNorm weight 1 and bias 0.
        (timm itself uses std 1e-6 for cls_token and PyTorch's default init for the patch conv; for a random
        benchmark backbone the difference is immaterial.)"""

        def trunc(t):
            with torch.no_grad():
                v = torch.empty_like(t).normal_(0.0, 1.0, generator=generator)
                bad = v.abs() > 2.0
                while bad.any():
                    v[bad] = torch.empty(int(bad.sum())).normal_(0.0, 1.0, generator=generator)
                    bad = v.abs() > 2.0
                t.copy_(v * 0.02)

        for name, p in self.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            else:
                trunc(p)
        return self

    # ---- forward ----------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(B, -1, -1), t], dim=1)
        return t + self.pos_embed

    def forward_features(self, x: torch.Tensor, prompts: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.embed(x)
        if prompts is not None:
            B = h.shape[0]
            p = prompts.expand(B, -1, -1) if prompts.shape[0] == 1 else prompts
            h = torch.cat([h[:, :1], p.to(h.dtype), h[:, 1:]], dim=1)  # [cls, prompts (no pos), patches]
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats[:, 0])

    def forward(self, x: torch.Tensor, prompts: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, prompts))

    # ---- loading ----------------------------------------------------------
    def load_weights(self, sd: Dict[str, torch.Tensor], strict: bool = True):
        """Load a timm-named state dict; resamples pos_embed when the grid differs (checkpoint_filter)."""
        sd = dict(sd)
        pe = sd.get("pos_embed")
        if pe is not None and pe.shape[1] != self.pos_embed.shape[1]:
            sd["pos_embed"] = resample_abs_pos_embed(pe, self.arch.grid)
        return self.load_state_dict(sd, strict=strict)


def build(arch_name: str, **overrides) -> VisionTransformer:
    return VisionTransformer(get_arch(arch_name, **overrides))
