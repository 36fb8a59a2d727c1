"""Command `review`: what a branch changed against another git revision, as one page to paste
into a pull request.

    python -m pipeline.review main            # the workspace against main
    python -m pipeline.review main feature    # one revision against another

DVC computes every difference (`dvc params diff`, `dvc metrics diff`, `dvc plots diff`, each
with `--json`); this command puts them on one page, headed by each dataset's data label on
both sides (results/<dataset>/data.json, pipeline/layout.py's words), so nobody reads a
stand-in's figures as real: reports/review.md (also printed, for the pull request) and
reports/review.html (the PNGs that changed embedded, both sides; the changed DVC plots drawn
by vega-embed from its CDN, as DVC's own `dvc plots diff` page does). Not part of any stage.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline import cli, layout, report
from pipeline.errors import DataError, error_line
from pipeline.files import atomic_file
from pipeline.tables import markdown_table

log = logging.getLogger("pipeline.review")

WORKSPACE = "workspace"  # DVC's name for the working tree in its diffs


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln.split("ERROR:", 1)[-1] for ln in result.stderr.splitlines() if ln.strip()]
        raise DataError(f"`{' '.join(command[2:] if command[0] == sys.executable else command)}`"
                        f" failed: {error_line(RuntimeError(' '.join(lines)))[:300]}. Fix: run "
                        "it from the project's root, with revisions git knows")
    return result.stdout


def _dvc_json(*args: str) -> dict[str, Any]:
    return json.loads(_run([sys.executable, "-m", "dvc", *args, "--json"]) or "{}")


def check_revision(rev: str) -> None:
    """A revision git doesn't know fails here, in one line, before DVC's longer message."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise DataError(f"'{rev}' is not a git revision of this repository. Fix: name a "
                        "branch, tag or commit (`git fetch` first for a teammate's branch)")


def _card(rev: str | None, dataset: str) -> dict[str, Any]:
    """results/<dataset>/data.json at a revision (None: the workspace), or {}."""
    path = layout.data_card(layout.RESULTS, dataset)
    if rev is None:
        return layout.read_record(path)
    shown = subprocess.run(["git", "show", f"{rev}:{path.as_posix()}"], capture_output=True,
                           text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else {}


def _datasets(rev: str | None) -> set[str]:
    if rev is None:
        return {p.parent.name for p in layout.RESULTS.glob("*/data.json")}
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "--",
                             layout.RESULTS.as_posix()], capture_output=True, text=True)
    return {Path(p).parent.name for p in listed.stdout.splitlines()
            if Path(p).name == "data.json" and len(Path(p).parts) == 3}


def labels(base: str, head: str | None) -> list[dict[str, Any]]:
    """Each dataset's data label on both sides ("-": not there)."""
    rows = []
    for dataset in sorted(_datasets(base) | _datasets(head)):
        sides = [_card(base, dataset), _card(head, dataset)]
        source = sides[1].get("source") or sides[0].get("source") or {"kind": "missing"}
        rows.append({"dataset": dataset, "source": source,
                     "labels": [layout.data_label(s["source"]) if s.get("source") else "-"
                                for s in sides]})
    return rows


def _plots(base: str, head: str | None, out: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every DVC plot with whether it changed (images read in, Vega specs kept), and what
    DVC could not read (a revision's outputs in neither the cache nor the remote)."""
    data = _dvc_json("plots", "diff", base, *([head] if head else []), "-o", str(out))
    errors = [f"{e.get('name', 'plots')} at {e.get('rev', '?')}: "
              f"{e.get('msg') or e.get('type', 'unreadable')}" for e in data.get("errors", [])]
    plots = []
    for name, renderers in sorted(data.get("data", {}).items()):
        if not renderers:  # no data on either side (a header-only CSV): nothing to draw
            plots.append({"name": name, "kind": "vega", "changed": False})
            continue
        vega = [r for r in renderers if r.get("type") == "vega"]
        if vega:
            points: dict[str, list] = {}
            for point in vega[0]["content"]["data"]["values"]:
                rest = {k: v for k, v in point.items() if k != "rev"}
                points.setdefault(point.get("rev", ""), []).append(rest)
            sides = list(points.values())  # one side only: the other has no data
            changed = len(sides) == 1 or (len(sides) == 2 and sides[0] != sides[1])
            plots.append({"name": name, "kind": "vega", "changed": changed,
                          "spec": json.dumps(vega[0]["content"])})
            continue
        images = {r["revisions"][0]: Path(r["url"]).read_bytes() for r in renderers
                  if r.get("type") == "image" and Path(r["url"]).is_file()}
        changed = len(images) != 2 or len(set(images.values())) != 1
        plots.append({"name": name, "kind": "image", "changed": changed, "images": [
            {"rev": rev, "data": base64.b64encode(raw).decode()} for rev, raw in images.items()]})
    return plots, errors


def collect(base: str, head: str | None) -> dict[str, Any]:
    """Everything the page shows, from DVC's own diffs."""
    check_revision(base)
    if head is not None:
        check_revision(head)
    revs = [base, *([head] if head else [])]
    params = _dvc_json("params", "diff", *revs)
    metrics = _dvc_json("metrics", "diff", *revs)
    with tempfile.TemporaryDirectory(prefix=".review-") as tmp:
        plots, unread = _plots(base, head, Path(tmp))
    return {
        "base": base, "head": head or WORKSPACE, "datasets": labels(base, head),
        "params": [[f"{file}: {key}", _fmt(d.get("old")), _fmt(d.get("new"))]
                   for file, changed in sorted(params.items())
                   for key, d in sorted(changed.items())],
        "metrics": [[file, key, _fmt(d.get("old")), _fmt(d.get("new")), _fmt(d.get("diff"))]
                    for file, changed in sorted(metrics.items())
                    for key, d in sorted(changed.items())],
        "plots": plots, "unread": unread,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-4 or value == 0 else f"{value:.2e}"
    return "-" if value is None else json.dumps(value) if isinstance(value, dict | list) \
        else str(value)


FETCH = ("fetch that revision's outputs (`dvc fetch --all-branches`) or push them from the "
         "clone that made them (`python -m pipeline.share push`)")
PARAM_HEADS = ["param", "old", "new"]
METRIC_HEADS = ["file", "metric", "old", "new", "change"]


def _heads(page: dict[str, Any]) -> list[str]:
    return ["dataset", f"data at {page['base']}", f"data at {page['head']}"]


def not_real(page: dict[str, Any]) -> list[str]:
    """The report's words for datasets on synthetic stand-ins, on either side."""
    return [line for row in page["datasets"]
            for line in report.banner_lines([{"dataset": row["dataset"], "source":
                                              row["source"]}])]


def to_markdown(page: dict[str, Any], html: str = "reports/review.html") -> str:
    out = [f"# Review: {page['head']} against {page['base']}", ""]
    banner = not_real(page)
    if banner:
        title, text = report.NOT_REAL
        out += [f"> **{title}** {text}", ">"] + [f"> - {ln}" for ln in banner] + [""]
    out += markdown_table(_heads(page), ([r["dataset"], *r["labels"]]
                                         for r in page["datasets"]))
    out += ["", "## Params", ""]
    out += (markdown_table(PARAM_HEADS, page["params"]) if page["params"]
            else ["No param changed."])
    out += ["", "## Metrics", ""]
    out += (markdown_table(METRIC_HEADS, page["metrics"]) if page["metrics"]
            else ["No metric changed."])
    changed = [p["name"] for p in page["plots"] if p["changed"]]
    out += ["", "## Plots", ""]
    out += ([f"- changed: `{name}`" for name in changed] or ["No plot changed."])
    out += [f"- not compared: {line}; {FETCH}" for line in page.get("unread", [])]
    out += ["", f"{len(page['plots']) - len(changed)} plots unchanged; the changed ones are "
            f"drawn in {html}, both sides.", ""]
    return "\n".join(out)


STYLE = report.HTML[report.HTML.index("<style>"):report.HTML.index("</style>") + 8]
HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Review: {{ head }} against {{ base }}</title>
{{ style }}
{{ scripts }}
</head>
<body><h1>Review: {{ head }} against {{ base }}</h1>
{% if banner %}<div class="banner"><b>{{ title }}</b> {{ text }}
<ul>{% for line in banner %}<li>{{ line }}</li>{% endfor %}</ul></div>{% endif %}
{% for name, heads, rows, empty in tables %}
<h2>{{ name }}</h2>
{% if rows %}<table>
<tr>{% for head in heads %}<th>{{ head }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>{% else %}<p>{{ empty }}</p>{% endif %}
{% endfor %}
<h2>Plots that changed</h2>
{% for plot in changed %}
<h3>{{ plot.name }}</h3>
{% if plot.kind == "vega" %}<div id="plot{{ loop.index }}"></div>
<script type="text/javascript">vegaEmbed('#plot{{ loop.index }}', {{ plot.spec | safe }});</script>
{% else %}<table><tr>{% for image in plot.images %}<th>{{ image.rev }}</th>{% endfor %}</tr><tr>
{% for image in plot.images %}<td><img alt="{{ plot.name }} at {{ image.rev }}"
 src="data:image/png;base64,{{ image.data }}"></td>{% endfor %}</tr></table>{% endif %}
{% else %}<p>No plot changed.</p>
{% endfor %}
{% if unread %}<ul>{% for line in unread %}<li>not compared: {{ line }}; {{ fetch }}</li>
{% endfor %}</ul>{% endif %}
<p>{{ unchanged }} plots unchanged.</p>
</body></html>
"""


def to_html(page: dict[str, Any]) -> str:
    """The page (Jinja2 escapes; only DVC's own JSON specs go in unescaped, as JSON)."""
    import jinja2
    import markupsafe
    from dvc_render.vega import VegaRenderer

    changed = [p for p in page["plots"] if p["changed"]]
    tables = [("Data", _heads(page), [[r["dataset"], *r["labels"]] for r in page["datasets"]],
               "No dataset."),
              ("Params", PARAM_HEADS, page["params"], "No param changed."),
              ("Metrics", METRIC_HEADS, page["metrics"], "No metric changed.")]
    template = jinja2.Environment(autoescape=True, trim_blocks=True,
                                  lstrip_blocks=True).from_string(HTML)
    return template.render(
        base=page["base"], head=page["head"], style=markupsafe.Markup(STYLE),
        scripts=markupsafe.Markup(VegaRenderer.SCRIPTS if any(
            p["kind"] == "vega" for p in changed) else ""),
        title=report.NOT_REAL[0], text=report.NOT_REAL[1], banner=not_real(page),
        tables=tables, changed=[{**p, "spec": p.get("spec", "").replace("</", "<\\/")}
                                for p in changed],
        unchanged=len(page["plots"]) - len(changed), unread=page.get("unread", []),
        fetch=FETCH)


def review(base: str, head: str | None, out: Path) -> str:
    page = collect(base, head)
    markdown = to_markdown(page, (out / "review.html").as_posix())
    with atomic_file(out / "review.md", "w") as fh:
        fh.write(markdown)
    with atomic_file(out / "review.html", "w") as fh:
        fh.write(to_html(page))
    log.info("review: %s against %s: %d params, %d metrics, %d of %d plots changed; wrote %s "
             "and %s", page["head"], base, len(page["params"]), len(page["metrics"]),
             sum(p["changed"] for p in page["plots"]), len(page["plots"]), out / "review.md",
             out / "review.html")
    print(markdown)
    return markdown


def main(argv: list[str] | None = None) -> None:
    # No --params (cli.command's): DVC reads each revision's own params.yaml.
    parser = argparse.ArgumentParser(prog="python -m pipeline.review", description=(
        "One page (Markdown and HTML) of what changed against a git revision: params, "
        "metrics, plots, data labels."))
    parser.set_defaults(params=None)
    parser.add_argument("--out-dir", type=Path, default=None, help="default: reports")
    parser.add_argument("base", help="the git revision to compare against (e.g. main)")
    parser.add_argument("head", nargs="?", default=None,
                        help="the revision to review (default: the workspace)")
    cli.run(parser, argv, lambda args: review(args.base, args.head,
                                              args.out_dir or Path("reports")))


if __name__ == "__main__":
    main()
