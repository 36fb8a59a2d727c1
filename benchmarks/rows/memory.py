"""Row 3, memory: per dataset, the peak RSS of the pipeline's largest stage against the
books' largest script, from the hook's records of the paired full runs."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from benchmarks.findings import joined
from benchmarks.render import Row
from benchmarks.workspace import Proc, is_stage

if TYPE_CHECKING:
    from benchmarks.suite import Suite


def stage_dataset(name: str, models: dict[str, str]) -> str | None:
    """The dataset a stage (or a books' script run) belongs to; None for check/report."""
    target = name.split("@")[1] if "@" in name else None
    if target is None:
        return None
    return models.get(target, target)


def largest(procs: list[Proc]) -> Proc:
    return max(procs, key=lambda p: p.peak_mb)


def build(suite: Suite) -> list[Row]:
    """One line per dataset; every stage's and script's peak goes to the details."""
    runs = suite.paired_runs()
    stage_peaks: dict[str, list[float]] = {}
    book_peaks: dict[str, list[float]] = {}
    for run in runs:
        for p in run["pipeline"].procs:
            if p.name == "dvc":  # its children are the stages, listed on their own
                stage_peaks.setdefault(p.name, []).append(p.rss_mb)
            elif is_stage(p.name):
                stage_peaks.setdefault(p.name, []).append(p.peak_mb)
        for key, timed in run["books"].items():
            book_peaks.setdefault(key, []).append(largest(timed.procs).peak_mb)
    suite.details["peak_rss_mb"] = {
        "stages": {k: statistics.median(v) for k, v in sorted(stage_peaks.items())},
        "books": {k: statistics.median(v) for k, v in sorted(book_peaks.items())}}
    rows = []
    for dataset in suite.datasets:
        stages = {k: statistics.median(v) for k, v in stage_peaks.items()
                  if stage_dataset(k, suite.models) == dataset}
        books = {k: statistics.median(v) for k, v in book_peaks.items()
                 if k.startswith(f"{dataset}/")}
        if not stages or not books:
            continue
        top_stage, top_book = max(stages, key=stages.get), max(books, key=books.get)
        pairs = []  # per run: (largest stage, largest script) of this dataset
        for run in runs:
            pairs.append((
                largest([x for x in run["pipeline"].procs
                         if stage_dataset(x.name, suite.models) == dataset]),
                largest([x for k, t in run["books"].items() if k.startswith(f"{dataset}/")
                         for x in t.procs])))
        per_run = [p.peak_mb / b.peak_mb for p, b in pairs]
        ratio = statistics.median(per_run)
        rows.append(Row(
            "3 memory", f"{dataset}: peak RSS, largest stage vs largest books' script",
            f"{stages[top_stage]:.0f} MB ({top_stage})",
            f"{books[top_book]:.0f} MB ({top_book.split('/')[1]})",
            ratio, min(per_run), max(per_run), "< 1x", ratio < 1,
            "" if ratio < 1 else finding(pairs, suite.details.get("import_rss_mb")),
            {"stages": stages, "books": books}))
    return rows


def described(p: Proc) -> str:
    """'train@mnist_dense 812 MB (own 812, largest child 0; imported tensorflow, mlflow)'."""
    return (f"{p.name} {p.peak_mb:.0f} MB (own {p.rss_mb:.0f}, largest child "
            f"{p.children_rss_mb:.0f}; imported {joined(p.imported)})")


def finding(pairs: list[tuple[Proc, Proc]], import_rss: dict[str, Any] | None) -> str:
    """The run with the median ratio: its largest process on each side, the peak split
    into its own and its largest child's, what each had imported (the hook); with
    --import-repeats, what a bare process importing those same libraries peaks at here."""
    ranked = sorted(range(len(pairs)), key=lambda i: pairs[i][0].peak_mb / pairs[i][1].peak_mb)
    i = ranked[(len(ranked) - 1) // 2]
    p, b = pairs[i]
    text = (f"run {i + 1} of {len(pairs)} (median ratio): {described(p)} vs {described(b)}, "
            f"{p.peak_mb - b.peak_mb:+.0f} MB")
    loaded = set(p.imported) | set(b.imported)
    relevant = {label: mb for label, mb in (import_rss or {}).items()
                if label == "python" or set(label.split("+")) - {"keras"} <= loaded}
    if relevant:
        text += "; a bare process here peaks at " + joined(
            f"{mb:.0f} MB ({'nothing imported' if label == 'python' else 'importing ' + label})"
            for label, mb in relevant.items())
    return text
