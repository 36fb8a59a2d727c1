"""The suite's output: one Markdown table (printed and written) and the same numbers
as JSON, rewritten after every row so a long run that dies still leaves its numbers."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.workspace import ROOT
from pipeline.files import atomic_file, write_json
from pipeline.tables import markdown_table


@dataclass
class Row:
    """One line of the table. ratio = pipeline / reference, median over repeats."""

    row: str
    measure: str
    pipeline: str
    reference: str
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    target: str = ""
    met: bool | None = None
    cause: str = ""  # for a missed target: what this run measured that bears on it
    values: dict[str, Any] = field(default_factory=dict)


def ratio_text(r: Row) -> str:
    """'1.23x (1.10-1.40)', or a percentage for targets given in percent."""
    if r.ratio is None:
        return "—"
    fmt = "{:.2%}" if r.target.endswith("%") else "{:.2f}x"
    text = fmt.format(r.ratio)
    if r.low is not None and r.high is not None and (r.low, r.high) != (r.ratio, r.ratio):
        text += f" ({fmt.format(r.low)}-{fmt.format(r.high)})"
    return text


def time_lines(t: dict[str, Any]) -> list[str]:
    """Where the pipeline's time goes, from the time row's breakdown (medians)."""
    rows = [[f"pipeline: `{k}` stages", f"{v:.1f}"]
            for k, v in sorted(t["stage_seconds_by_kind"].items())]
    rows += [["pipeline: `dvc repro` outside any stage process (total - stages)",
              f"{t['dvc_overhead_seconds']:.1f}"],
             ["pipeline: processes importing TensorFlow / MLflow",
              f"{t['pipeline_processes_with_tensorflow']:.0f} / "
              f"{t['pipeline_processes_with_mlflow']:.0f}"],
             ["books: scripts importing TensorFlow / MLflow",
              f"{t['books_processes_with_tensorflow']:.0f} / "
              f"{t['books_processes_with_mlflow']:.0f}"]]
    rows += [[f"books: `{k}`", f"{v:.1f}"] for k, v in t["books_script_seconds"].items()]
    rows += [[f"import in a fresh process: {k}", f"{v:.2f}"]
             for k, v in t["import_seconds"].items()]
    rows += [[f"{side}: imports per full run, estimated", f"{v:.0f}"]
             for side, v in t.get("import_tax_seconds", {}).items()]
    rows += [[f"full run {i + 1}: 1-min load average before/after each side", ", ".join(
        f"{k.replace('_load_', ' ')} {v}" for k, v in loads.items())]
        for i, loads in enumerate(t.get("load_average", []))]
    lines = ["", "## Where the time goes (medians)", ""]
    lines += markdown_table(["part", "seconds"], rows)
    return lines


def seed_lines(rows: list[Row]) -> list[str]:
    """The accuracy rows seed by seed: what their means and paired differences rest on."""
    table = [[r.measure.split(":")[0], str(seed), f"{p:.4f}", f"{b:.4f}", f"{p - b:+.4f}"]
             for r in rows if "seeds" in r.values
             for seed, p, b in zip(r.values["seeds"], r.values["pipeline"], r.values["books"],
                                   strict=True)]
    if not table:
        return []
    return ["", "## Accuracy per seed (the same seed on both sides)", "",
            *markdown_table(["model", "seed", "pipeline", "books", "difference"], table)]


def render(rows: list[Row], header: dict[str, Any], details: dict[str, Any],
           errors: list[str]) -> str:
    """The whole Markdown page: the table, then what the missed targets measured, the
    failed rows, and the time and memory breakdowns the rows left in `details`."""
    met = {True: "yes", False: "**MISSED**", None: "—"}
    lines = [
        "# Benchmarks: the pipeline against the books' plain code",
        "",
        f"{header['when']} · {header['machine']} · commit {header['commit']} · "
        f"repeats {header['repeats']} · accuracy seeds {header['seeds']} · "
        f"`{header['command']}`",
        "",
        "Data (the same local files on both sides): " + "; ".join(
            f"{d}: **{s['kind']}** ({s['detail']})" if s.get("detail") else f"{d}: **{s['kind']}**"
            for d, s in header["sources"].items()),
        "",
    ]
    lines += markdown_table(
        ["row", "measure", "pipeline", "books / bare", "ratio (median, range)", "target", "met"],
        ([r.row, r.measure, r.pipeline, r.reference, ratio_text(r), r.target, met[r.met]]
         for r in rows))
    missed = [r for r in rows if r.met is False]
    if missed:
        lines += ["", "## Missed targets: what this run measured", ""]
        lines += [f"- {r.row}, {r.measure}: {ratio_text(r)} vs {r.target}. Measured: {r.cause}"
                  for r in missed]
    if errors:
        lines += ["", "## Rows that failed", ""] + [f"- {e}" for e in errors]
    lines += seed_lines(rows)
    if "time" in details:
        lines += time_lines(details["time"])
    if "peak_rss_mb" in details:
        rss = details["peak_rss_mb"]
        lines += ["", "## Peak RSS per stage and script (MB, medians)", ""]
        lines += markdown_table(["process", "peak RSS"], [
            *([k, f"{v:.0f}"] for k, v in rss["stages"].items()),
            *([f"books: {k}", f"{v:.0f}"] for k, v in rss["books"].items())])
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    """The project's commit (+dirty): which code the numbers belong to."""
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                           capture_output=True, text=True).stdout.strip()
    return (out.stdout.strip() or "?") + ("+dirty" if dirty else "")


def write_results(out: Path, started: str, args: argparse.Namespace, argv: list[str] | None,
                  sources: dict, rows: list[Row], details: dict, errors: list[str]) -> str:
    """The table so far, after every row: a long run that dies still leaves its numbers."""
    header = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "commit": args.commit,
        "repeats": args.repeats,
        "seeds": args.seeds,
        "command": "python -m benchmarks " + " ".join(argv if argv is not None
                                                      else sys.argv[1:]),
        "sources": sources,
    }
    text = render(rows, header, details, errors)
    with atomic_file(out / f"{started}.md", "w") as fh:
        fh.write(text)
    write_json(out / f"{started}.json", {"header": header, "rows": [asdict(r) for r in rows],
                                         "details": details, "errors": errors})
    return text
