"""Stage `report`: every dataset's baseline and Keras models side by side, next to the books.

Writes reports/report.md and a self-contained reports/report.html (plots embedded),
from the DVC metrics of the baseline/evaluate stages, the training summaries and
each dataset's data card (results/<dataset>/data.json, written by `prepare`). A banner
at the top names every dataset whose data was not the canonical source, so nobody
mistakes a sample run for a real result.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import cli, layout, metrics
from pipeline.config import load_params
from pipeline.files import atomic_file
from pipeline.layout import UPSTREAM_KINDS
from pipeline.tables import markdown_table

log = logging.getLogger("pipeline.report")


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def collect(params: DictConfig, results: Path, models: Path) -> list[dict]:
    """One section per dataset: its source, its rows (baseline + models), its plots."""
    sections = []
    for name, ds in params.datasets.items():
        card = _read(layout.data_card(results, name))
        headline = metrics.RANKED_BY[ds.task]
        rows = []
        baseline = _read(results / name / "baseline" / "metrics.json")
        if baseline:
            rows.append({"model": "baseline (SGD linear)",
                         "cv": baseline.get(f"cv_{headline}"),
                         "val": baseline.get(f"val_{headline}"),
                         "test": baseline.get(f"test_{headline}"),
                         "test_loss": baseline.get("test_loss", baseline.get("test_mse")),
                         "epochs": None, "seconds": None})
        plots = []
        for model, cfg in params.models.items():
            if cfg.dataset != name:
                continue
            scores = _read(results / name / model / "metrics.json")
            history, summary = layout.read_training(layout.model_dir(models, model))
            if not scores:
                continue
            val_key = f"val_{headline}"
            best_val = metrics.figure(val_key, history, summary)  # the saved model's
            rows.append({"model": model,
                         "cv": summary.get(f"kfold_val_{headline}_mean"),
                         "val": best_val,
                         "test": scores.get(f"test_{headline}"),
                         "test_loss": scores.get("test_loss"),
                         "epochs": scores.get("epochs"),
                         "seconds": (f"{summary['train_seconds']:.1f}"
                                     if "train_seconds" in summary else None)})
            plots += sorted((results / name / model / "plots").glob("*.png"))
        sections.append({
            "dataset": name, "task": ds.task, "metric": headline,
            "source": card.get("source", {"kind": "missing"}),
            "rows": rows, "plots": plots,
            "published": OmegaConf.to_container(ds.published) if ds.published else [],
        })
    return sections


def banner_lines(sections: list[dict]) -> list[str]:
    return [f"{s['dataset']}: {s['source'].get('kind', '?').upper()} data "
            f"({s['source'].get('detail', '')})"
            for s in sections if s["source"].get("kind") not in UPSTREAM_KINDS]


COLUMNS = [("model", "model"), ("cv", "CV / K-fold {m}"), ("val", "val {m}"),
           ("test", "test {m}"), ("test_loss", "test loss"), ("epochs", "epochs"),
           ("seconds", "train s")]


def to_markdown(sections: list[dict], out_dir: Path) -> str:
    out = ["# Results", ""]
    warnings = banner_lines(sections)
    if warnings:
        out += ["> **NOT REAL RESULTS for some datasets.** Their data did not come from the",
                "> canonical source, so these numbers say only that the pipeline runs:", ">"]
        out += [f"> - {line}" for line in warnings] + [""]
    for s in sections:
        out += [f"## {s['dataset']} ({s['task']}, data: {s['source'].get('kind')})", ""]
        out += markdown_table([h.format(m=s["metric"]) for _, h in COLUMNS],
                              ([_fmt(r[k]) for k, _ in COLUMNS] for r in s["rows"]))
        if s["published"]:
            out += ["", "Published (the books): " + "; ".join(
                f"{p['what']}: {p['metric']} {p['value']}" for p in s["published"])]
        out += [""] + [f"![{p.stem}]({Path(os.path.relpath(p, out_dir)).as_posix()})"
                       for p in s["plots"]]
        out.append("")
    return "\n".join(out)


def to_html(sections: list[dict]) -> str:
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Results</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
             ".banner{background:#fde2e1;border:2px solid #c00;padding:8px 16px}"
             "img{max-width:100%}</style></head><body><h1>Results</h1>"]
    warnings = banner_lines(sections)
    if warnings:
        parts.append("<div class='banner'><b>NOT REAL RESULTS for some datasets.</b> Their "
                     "data did not come from the canonical source:<ul>"
                     + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul></div>")
    for s in sections:
        parts.append(f"<h2>{esc(s['dataset'])} ({esc(s['task'])}, data: "
                     f"{esc(str(s['source'].get('kind')))})</h2><table><tr>")
        parts += [f"<th>{esc(h.format(m=s['metric']))}</th>" for _, h in COLUMNS]
        parts.append("</tr>")
        for r in s["rows"]:
            parts.append("<tr>" + "".join(f"<td>{esc(_fmt(r[k]))}</td>" for k, _ in COLUMNS)
                         + "</tr>")
        parts.append("</table>")
        if s["published"]:
            parts.append("<p>Published (the books): " + esc("; ".join(
                f"{p['what']}: {p['metric']} {p['value']}" for p in s["published"])) + "</p>")
        for plot in s["plots"]:
            data = base64.b64encode(plot.read_bytes()).decode()
            parts.append(f"<p><img alt='{esc(plot.stem)}' src='data:image/png;base64,{data}'>"
                         "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def report(params: DictConfig, results: Path, models: Path, out: Path) -> Path:
    sections = collect(params, results, models)
    with atomic_file(out / "report.md", "w") as fh:
        fh.write(to_markdown(sections, out))
    with atomic_file(out / "report.html", "w") as fh:
        fh.write(to_html(sections))
    for line in banner_lines(sections):
        log.warning("report: %s: NOT the real dataset", line)
    log.info("report: %s and %s (%d datasets)", out / "report.md", out / "report.html",
             len(sections))
    return out / "report.html"


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.report", "Write the comparison report (Markdown + "
                         "self-contained HTML).", folders=(), out="reports")
    cli.run(parser, argv, lambda args: report(load_params(args.params), layout.RESULTS,
                                              layout.MODELS, args.out_dir or Path("reports")))


if __name__ == "__main__":
    main()
