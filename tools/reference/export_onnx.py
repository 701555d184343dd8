#!/usr/bin/python3
"""Baseline ONNX export with torch.onnx.export (what the TypeScript exporter is compared against).

Usage:  /usr/bin/python3 tools/reference/export_onnx.py --arch vit_tiny_patch16_224 --out DIR [--seed 0]

Builds the arch with random timm-like weights (see VisionTransformer.init_timm_like; 1000-class head),
writes DIR/<arch>.safetensors (F32, timm names) and DIR/<arch>.torch.onnx
(input `input` [N,3,H,W] with dynamic N, output `logits` [N,C], opset 17, constant folding on),
and prints one JSON line with the export time and file sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402
from vit_ref import ARCHS, VisionTransformer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="vit_tiny_patch16_224", choices=sorted(ARCHS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    arch = ARCHS[args.arch]
    model = VisionTransformer(arch).init_timm_like(torch.Generator().manual_seed(args.seed)).eval()
    os.makedirs(args.out, exist_ok=True)
    st_path = os.path.join(args.out, f"{args.arch}.safetensors")
    onnx_path = os.path.join(args.out, f"{args.arch}.torch.onnx")
    st.save(st_path, model.state_dict(), metadata={**arch.metadata(), "arch": args.arch, "seed": str(args.seed)})

    dummy = torch.randn(1, 3, arch.img_size, arch.img_size)
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(model, (dummy,), onnx_path, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=args.opset,
                          do_constant_folding=True)
    export_s = time.perf_counter() - t0

    info = {"arch": args.arch, "torch": torch.__version__, "opset": args.opset, "export_s": round(export_s, 3),
            "safetensors": st_path, "safetensors_bytes": os.path.getsize(st_path),
            "onnx": onnx_path, "onnx_bytes": os.path.getsize(onnx_path)}
    try:
        import onnx
        m = onnx.load(onnx_path)
        onnx.checker.check_model(m)
        ops = {}
        for n in m.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        info["onnx_nodes"] = len(m.graph.node)
        info["onnx_ops"] = dict(sorted(ops.items()))
    except ImportError:
        pass
    print(json.dumps(info))


if __name__ == "__main__":
    main()
