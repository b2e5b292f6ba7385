"""The stand-in board against the local CPU: the same ops, the same runtime (ONNX Runtime, 1 thread), the same CPU.

Starts :class:`hwprof.testing.fake_board.FakeBoard`, runs ``hwprof measure --device <stand-in> --space S --ops``
through the real ssh client, then the same campaign on ``cpu``, and prints wall times, record counts and the
median relative difference of the per-op medians. A check of the SSH/trtexec path, not a board measurement.

    python benchmarks/bench_stand_in_board.py --space lightnas [--limit N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hwprof.measure.records import latencies_by_key
from hwprof.measure.store import Store
from hwprof.testing.fake_board import FakeBoard, config_toml


def campaign(device: str, args, store: Path, cwd: Path) -> float:
    cmd = [sys.executable, "-m", "hwprof.cli", "measure", "--device", device, "--space", args.space, "--ops",
           "--store", str(store), "--rounds", str(args.rounds), "--warmup-runs", "5", "--min-runs", "10",
           "--max-runs", "30", "--quiet", "--busy", "flag"]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{device}: {r.stderr[-500:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="lightnas")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, FakeBoard() as board:
        tmp = Path(d)
        cfg = tmp / "stand-in-board.toml"
        cfg.write_text(config_toml(board, name="stand-in-board", sentinel_every=0))
        wall_board = campaign(str(cfg), args, tmp / "board.sqlite", tmp)
        wall_cpu = campaign("cpu", args, tmp / "cpu.sqlite", tmp)
        with Store(tmp / "board.sqlite") as s:
            b_recs = list(s.iter_records())
        with Store(tmp / "cpu.sqlite") as s:
            c_recs = list(s.iter_records())
    b, c = latencies_by_key(b_recs), latencies_by_key(c_recs)
    common = sorted(set(b) & set(c))
    rel = [b[k] / c[k] - 1 for k in common]
    print(f"stand-in board: {len(b_recs)} records ({len(b)} ops × {args.rounds} rounds), {wall_board:.0f} s wall")
    print(f"cpu:            {len(c_recs)} records ({len(c)} ops × {args.rounds} rounds), {wall_cpu:.0f} s wall")
    print(f"per-op medians, board / cpu - 1 over {len(common)} ops: median {statistics.median(rel):+.1%}, "
          f"range {min(rel):+.1%} .. {max(rel):+.1%}")
    power = [float(m.environment["power_w"]) for m in b_recs if "power_w" in m.environment]
    if power:
        print(f"stand-in tegrastats power (a stand-in figure from this CPU's load): {statistics.median(power):.2f} W median")


if __name__ == "__main__":
    main()
