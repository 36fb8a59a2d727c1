"""Benchmark of the data stages: no-op `dvc repro` time, prepare's peak memory, IMDB bytes.

Run from the project root after `dvc repro` has built data/ once:

    uv run --locked python benchmarks/data_stages.py [--repeats 5]

Prints a table and writes it to benchmarks/results/data_stages.md. Figures are
measured, never asserted: these machines are noisy, so each timing is the
median (and range) of repeated runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak RSS of one child process (ru_maxrss of a fresh grandchild-free run)."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    timed(["dvc", "repro"])  # make sure everything is built
    noop = [timed(["dvc", "repro"]) for _ in range(args.repeats)]
    rows = [("no-op `dvc repro` (s)", f"{statistics.median(noop):.2f}",
             f"{min(noop):.2f}-{max(noop):.2f}", "< 3 s")]

    manifests = {p.parent.parent.name: json.loads(p.read_text())
                 for p in sorted(ROOT.glob("data/*/prepared/manifest.json"))}
    for name, manifest in manifests.items():
        rss = [peak_rss_mb([sys.executable, "-m", "pipeline.prepare", name])
               for _ in range(max(1, args.repeats // 2))]
        rows.append((f"prepare@{name} peak RSS (MB), {manifest['source']['kind']} data",
                     f"{statistics.median(rss):.0f}", f"{min(rss):.0f}-{max(rss):.0f}", ""))

    imdb = manifests.get("imdb")
    if imdb:
        for split, info in imdb["splits"].items():
            dense = info["rows"] * info["x_shape"][1] * 8  # the books' np.zeros float64 matrix
            rows.append((f"imdb {split}: CSR bytes vs dense float64 ({info['rows']:,} rows)",
                         f"{info['x_bytes'] / 1e6:.1f} MB vs {dense / 1e9:.2f} GB",
                         f"{info['x_bytes'] / dense:.2%}", "<= 2%"))

    table = ["| measure | median / value | range / ratio | target |", "| --- | --- | --- | --- |"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = "\n".join(table)
    print(text)
    out = ROOT / "benchmarks" / "results" / "data_stages.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Data stages ({time.strftime('%Y-%m-%d %H:%M')}, "
                   f"{os.cpu_count()} cores)\n\n{text}\n")


if __name__ == "__main__":
    main()
