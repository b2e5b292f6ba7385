"""Export the validation zoo (issue 13): torchvision networks as ONNX files, by hwprof's exporter.

torchvision imports only beside the registry's default (CUDA) build of torch,
so this runs in a separate environment, once::

    python3 -m venv zoo-venv
    zoo-venv/bin/pip install torch==2.13.0 torchvision==0.28.0 onnx onnxruntime pandas scipy scikit-learn typer rich flatbuffers
    zoo-venv/bin/pip install --no-deps -e .
    zoo-venv/bin/python benchmarks/zoo_export.py --out out/zoo

Each network is built with ``weights=None`` (random weights: latency does not
depend on them) at batch 1, 3×224×224, and exported with
:func:`hwprof.artifacts.export.export_module` exactly as ``hwprof measure
--model torchvision:NAME`` would. The files are then measured and predicted
from the default environment (``benchmarks/bench_kernels.py``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

#: At least 15 networks of different families (issue 13, part 5).
ZOO = (
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet0_5", "mnasnet1_0", "efficientnet_b0",
    "efficientnet_b1", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "resnet18", "resnet34", "resnet50",
    "resnext50_32x4d", "regnet_x_400mf", "regnet_y_400mf", "squeezenet1_0", "squeezenet1_1", "densenet121",
    "googlenet", "convnext_tiny", "alexnet",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="Folder for the .onnx files.")
    ap.add_argument("--only", nargs="*", default=None, help="Only these networks.")
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    from hwprof.artifacts.export import export_module
    from hwprof.artifacts.model import torchvision_module

    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or ZOO:
        path = args.out / f"{name}.onnx"
        if path.exists():
            print(f"{name}: kept {path}")
            continue
        t0 = time.perf_counter()
        export_module(torchvision_module(name), (args.batch, 3, 224, 224), "onnx", path, description=f"torchvision {name}")
        print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
