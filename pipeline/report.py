"""Stage `report`: every dataset's baseline and Keras models side by side, next to the books.

Each figure comes with its seed spread, when a seed study measured it
(results/<dataset>/<model>/seeds.json, pipeline/seed_study.py; flagged when measured for
other settings or code), and its gap to the books' published figure (pipeline/yardstick.py).

Writes reports/report.md and a self-contained reports/report.html (plots embedded),
from the DVC metrics of the baseline/evaluate stages, the training summaries and
each dataset's data card (results/<dataset>/data.json, written by `prepare`). Each
dataset's heading says what its data is (pipeline/layout.py's words). A "NOT REAL
RESULTS" banner names every dataset on synthetic stand-in data, so nobody mistakes a
sample run for a real result; a note below it names real subsets (with their size) and
bundled data not proven real. Data proven identical to the canonical dataset is real.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import cli, layout, metrics, yardstick
from pipeline.config import load_params
from pipeline.files import atomic_file
from pipeline.layout import data_label, data_tier
from pipeline.tables import markdown_table

log = logging.getLogger("pipeline.report")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def collect(params: DictConfig, results: Path, models: Path) -> list[dict]:
    """One section per dataset: its source, its rows (baseline + models), its plots."""
    sections = []
    for name, ds in params.datasets.items():
        card = layout.read_record(layout.data_card(results, name))
        headline = metrics.RANKED_BY[ds.task]
        rows = []
        baseline = layout.read_record(
            layout.results_dir(results, name, layout.BASELINE) / "metrics.json")
        if baseline:
            rows.append({"name": layout.BASELINE, "model": "baseline (SGD linear)",
                         "cv": baseline.get(f"cv_{headline}"),
                         "val": baseline.get(f"val_{headline}"),
                         "test": baseline.get(f"test_{headline}"),
                         "test_loss": baseline.get("test_loss", baseline.get("test_mse")),
                         "spread": None, "epochs": None, "seconds": None})
        plots = []
        for model, cfg in params.models.items():
            if cfg.dataset != name:
                continue
            scores = layout.read_record(layout.results_dir(results, name, model)
                                        / "metrics.json")
            folder = layout.model_dir(models, model)
            history, summary = layout.read_training(folder)
            if not scores:
                continue
            val_key = f"val_{headline}"
            best_val = metrics.figure(val_key, history, summary)  # the saved model's
            rows.append({"name": model, "model": model,
                         "cv": summary.get(f"kfold_val_{headline}_mean"),
                         "val": best_val,
                         "test": scores.get(f"test_{headline}"),
                         "test_loss": scores.get("test_loss"),
                         "spread": seed_spread(params, model, layout.read_record(
                             layout.seeds_file(results, name, model)),
                             layout.read_record(folder / layout.KEY_FILE)),
                         "epochs": scores.get("epochs"),
                         "seconds": (f"{summary['train_seconds']:.1f}"
                                     if "train_seconds" in summary else None)})
            plots += sorted((layout.results_dir(results, name, model) / "plots").glob("*.png"))
        published = OmegaConf.to_container(ds.published) if ds.published else []
        for row in rows:
            row["book"] = "; ".join(
                yardstick.gap(p["metric"], row[yardstick.column(p["metric"])],
                              yardstick.parse(p["value"]))
                for p in published if row["name"] in p["models"]) or None
        sections.append({
            "dataset": name, "task": ds.task, "metric": headline,
            "source": card.get("source", {"kind": "missing"}),
            "rows": rows, "plots": plots, "published": published,
        })
    return sections


def seed_spread(params: DictConfig, model: str, study: dict, trained: dict) -> str:
    """The test figure's spread over seeds, as a seed study measured it: "± sd (n seeds:
    mean, min-max)", flagged when measured for other settings or code than the model shown.
    Without a study the figure is one seed's, and the cell says so."""
    if not study:
        return f"single seed ({params.seed}), not measured"
    text = (f"± {study['sd']:.4f} ({len(study['seeds'])} seeds: {study['mean']:.4f}, "
            f"{study['min']:.4f}-{study['max']:.4f})")
    if study.get("training_key") == trained.get("key"):
        return text
    config = OmegaConf.to_container(params.models[model], resolve=True)
    same_settings = study.get("config") == config and study["seeds"][0] == params.seed
    return text + (" measured with earlier code" if same_settings
                   else " measured for other settings")


def banner_lines(sections: list[dict], tiers: tuple[str, ...] = ("synthetic",)) -> list[str]:
    """`<dataset>: <label> (<where from>)` for each dataset whose data is of these tiers."""
    return [f"{s['dataset']}: {data_label(s['source'])} ({s['source'].get('detail', '')})"
            for s in sections if data_tier(s["source"]) in tiers]


NOT_REAL = ("NOT REAL RESULTS for some datasets.", "Their data is a synthetic stand-in, not "
            "the real dataset, so these numbers say only that the pipeline runs:")
NOTE = ("Not the full, proven real data:", "a real subset's figures don't compare with "
        "published ones; bundled data not proven real may not either:")
NOTE_TIERS = ("subset", "unverified")


COLUMNS = [("model", "model"), ("cv", "CV / K-fold {m}"), ("val", "val {m}"),
           ("test", "test {m}"), ("spread", "seed spread of test {m}"),
           ("book", "vs the book"), ("test_loss", "test loss"), ("epochs", "epochs"),
           ("seconds", "train s")]
SEEDS_NOTE = ("Each figure is one run with params.yaml's seed. The seed spread is what "
              "`python -m pipeline.seed_study <model> --seeds 5` measured (sample sd over "
              "seeds; results/<dataset>/<model>/seeds.json, and an MLflow run); a spread "
              "larger than a difference means the difference may be luck.")


def published_line(published: list[dict]) -> str:
    """'dense 16-16-1 (DLwP ch. 3): test accuracy ~0.88; ...'"""
    return "; ".join(f"{p['what']}: {p['metric'].replace('_', ' ')} {p['value']}"
                     for p in published)


def to_markdown(sections: list[dict], out_dir: Path) -> str:
    out = ["# Results", ""]
    for (title, text), lines in ((NOT_REAL, banner_lines(sections)),
                                 (NOTE, banner_lines(sections, NOTE_TIERS))):
        if lines:
            out += [f"> **{title}** {text}", ">"] + [f"> - {line}" for line in lines] + [""]
    out += [SEEDS_NOTE, ""]
    for s in sections:
        out += [f"## {s['dataset']} ({s['task']}, data: {data_label(s['source'])})", ""]
        out += markdown_table([h.format(m=s["metric"]) for _, h in COLUMNS],
                              ([_fmt(r[k]) for k, _ in COLUMNS] for r in s["rows"]))
        if s["published"]:
            out += ["", f"Published (the books): {published_line(s['published'])}"]
        out += [""] + [f"![{p.stem}]({Path(os.path.relpath(p, out_dir)).as_posix()})"
                       for p in s["plots"]]
        out.append("")
    return "\n".join(out)


HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Results</title>
<style>
body{font-family:sans-serif;max-width:1100px;margin:auto}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:4px 8px}
.banner{background:#fde2e1;border:2px solid #c00;padding:8px 16px}
.note{background:#fff6d6;border:1px solid #b80;padding:8px 16px;margin-top:8px}
img{max-width:100%}
</style></head>
<body><h1>Results</h1>
{% for box in boxes if box.lines %}
<div class="{{ box.css }}"><b>{{ box.title }}</b> {{ box.text }}
<ul>{% for line in box.lines %}<li>{{ line }}</li>{% endfor %}</ul></div>
{% endfor %}
<p>{{ seeds_note }}</p>
{% for s in sections %}
<h2>{{ s.dataset }} ({{ s.task }}, data: {{ s.label }})</h2>
<table>
<tr>{% for head in s.heads %}<th>{{ head }}</th>{% endfor %}</tr>
{% for row in s.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if s.published %}<p>Published (the books): {{ s.published }}</p>{% endif %}
{% for plot in s.plots %}
<p><img alt="{{ plot.name }}" src="data:image/png;base64,{{ plot.data }}"></p>
{% endfor %}
{% endfor %}
</body></html>
"""


def to_html(sections: list[dict]) -> str:
    """The self-contained page (plots embedded), from the HTML template (Jinja2 escapes)."""
    import jinja2

    boxes = [{"title": title, "text": text, "lines": lines, "css": css}
             for (title, text), lines, css in (
                 (NOT_REAL, banner_lines(sections), "banner"),
                 (NOTE, banner_lines(sections, NOTE_TIERS), "note"))]
    shown = [{
        "dataset": s["dataset"], "task": s["task"], "label": data_label(s["source"]),
        "heads": [h.format(m=s["metric"]) for _, h in COLUMNS],
        "rows": [[_fmt(r[k]) for k, _ in COLUMNS] for r in s["rows"]],
        "published": published_line(s["published"]),
        "plots": [{"name": p.stem, "data": base64.b64encode(p.read_bytes()).decode()}
                  for p in s["plots"]],
    } for s in sections]
    template = jinja2.Environment(autoescape=True, trim_blocks=True,
                                  lstrip_blocks=True).from_string(HTML)
    return template.render(boxes=boxes, sections=shown, seeds_note=SEEDS_NOTE)


def report(params: DictConfig, results: Path, models: Path, out: Path) -> Path:
    sections = collect(params, results, models)
    with atomic_file(out / "report.md", "w") as fh:
        fh.write(to_markdown(sections, out))
    with atomic_file(out / "report.html", "w") as fh:
        fh.write(to_html(sections))
    for line in banner_lines(sections):
        log.warning("report: %s: NOT the real dataset", line)
    for line in banner_lines(sections, NOTE_TIERS):
        log.warning("report: %s", line)
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
