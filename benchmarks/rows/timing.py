"""Row 2, time: a full `dvc repro` against all the books' scripts one after another, from
the paired full runs; then that ratio split into its Keras and baseline parts, so one
slow side cannot hide behind the other. Its breakdown feeds 'Where the time goes'."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from benchmarks.findings import (
    import_costs_text,
    import_tax,
    importing,
    joined,
    measure_imports,
    seconds_text,
    share,
)
from benchmarks.render import Row
from benchmarks.workspace import BASELINE, is_stage

if TYPE_CHECKING:
    from benchmarks.suite import Suite

# Stage kinds against the books' scripts they replace: (label, kinds, baseline scripts?).
PARTS = (("Keras models: `prepare`+`train`+`evaluate` stages vs the model scripts",
          ("prepare", "train", "evaluate"), False),
         ("baselines: `baseline` stages vs the SGD scripts", ("baseline",), True))


def part_seconds(run: dict[str, Any], kinds: tuple[str, ...], baseline: bool) -> tuple[
        float, float]:
    """One run's seconds of these stage kinds, and of the books' scripts they stand for."""
    pipe = sum(p.seconds for p in run["pipeline"].procs
               if "@" in p.name and p.name.split("@")[0] in kinds)
    books = sum(t.seconds for key, t in run["books"].items()
                if key.endswith(f"/{BASELINE}") == baseline)
    return pipe, books


def build(suite: Suite) -> list[Row]:
    """The full-run line (target ≤ 1.15x) and its two breakdown lines."""
    runs = suite.paired_runs()
    pipe = [r["pipeline"].seconds for r in runs]
    books = [r["books_seconds"] for r in runs]
    ratios = [p / b for p, b in zip(pipe, books, strict=True)]
    breakdown = time_breakdown(runs)
    breakdown["import_seconds"] = imports = measure_imports(suite)
    breakdown["import_tax_seconds"] = {
        side: statistics.median(import_tax(run, imports) for run in breakdown["imported"][side])
        for side in ("pipeline", "books")} if imports else {}
    suite.details["time"] = breakdown
    ratio = statistics.median(ratios)
    met = ratio <= 1.15
    rows = [Row("2 time", f"full `dvc repro` ({len(suite.datasets)} datasets) vs the books' "
                f"scripts one after another, n={len(runs)}",
                seconds_text(pipe), seconds_text(books), ratio, min(ratios), max(ratios),
                "≤ 1.15x", met, "" if met else finding(breakdown, imports),
                {"pipeline": pipe, "books": books})]
    for label, kinds, baseline in PARTS:
        pairs = [part_seconds(run, kinds, baseline) for run in runs]
        if not all(b for _, b in pairs):
            continue
        part_ratios = [p / b for p, b in pairs]
        rows.append(Row("2 time", f"{label} (part of the full run above)",
                        seconds_text([p for p, _ in pairs]), seconds_text([b for _, b in pairs]),
                        statistics.median(part_ratios), min(part_ratios), max(part_ratios),
                        "(breakdown)", None,
                        values={"pipeline": [p for p, _ in pairs],
                                "books": [b for _, b in pairs]}))
    return rows


def time_breakdown(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the pipeline's seconds go (medians over the runs): stage kinds, the time
    `dvc repro` spent outside any stage process, the gap split by part, imports."""
    kinds: dict[str, list[float]] = {}
    stage_sums, tf, mlflow, books_tf, books_mlflow = [], [], [], [], []
    gaps: dict[str, list[float]] = {"keras": [], "baseline": [], "other stages": []}
    imported: dict[str, list[list[list[str]]]] = {"pipeline": [], "books": []}
    by_kind: list[dict[str, list[list[str]]]] = []
    for run in runs:
        stages = [p for p in run["pipeline"].procs if is_stage(p.name)]
        scripts = [p for t in run["books"].values() for p in t.procs]
        per_kind: dict[str, float] = {}
        modules: dict[str, list[list[str]]] = {}
        for p in stages:
            kind = p.name.split("@")[0]
            per_kind[kind] = per_kind.get(kind, 0.0) + p.seconds
            modules.setdefault(kind, []).append(p.imported)
        for kind, seconds in per_kind.items():
            kinds.setdefault(kind, []).append(seconds)
        by_kind.append(modules)
        stage_sums.append(sum(p.seconds for p in stages))
        tf.append(importing(stages, "tensorflow"))
        mlflow.append(importing(stages, "mlflow"))
        books_tf.append(importing(scripts, "tensorflow"))
        books_mlflow.append(importing(scripts, "mlflow"))
        imported["pipeline"].append([p.imported for p in stages])
        imported["books"].append([p.imported for p in scripts])
        for (_, part_kinds, baseline), name in zip(PARTS, ("keras", "baseline"), strict=True):
            p, b = part_seconds(run, part_kinds, baseline)
            gaps[name].append(p - b)
        gaps["other stages"].append(sum(s for k, s in per_kind.items() if k not in
                                        PARTS[0][1] + PARTS[1][1]))
    pipeline_total = statistics.median(r["pipeline"].seconds for r in runs)
    return {
        "load_average": [{k: round(v, 2) for k, v in r.items() if "_load_" in k} for r in runs],
        "pipeline_seconds": pipeline_total,
        "books_seconds": statistics.median(r["books_seconds"] for r in runs),
        "stage_seconds_by_kind": {k: statistics.median(v) for k, v in kinds.items()},
        "stage_seconds": statistics.median(stage_sums),
        "dvc_overhead_seconds": pipeline_total - statistics.median(stage_sums),
        "gap_seconds_by_part": {k: statistics.median(v) for k, v in gaps.items() if v},
        "pipeline_processes_with_tensorflow": statistics.median(tf),
        "pipeline_processes_with_mlflow": statistics.median(mlflow),
        "books_processes_with_tensorflow": statistics.median(books_tf),
        "books_processes_with_mlflow": statistics.median(books_mlflow),
        "imported": imported,
        "imported_by_kind": by_kind,
        "books_script_seconds": {
            key: statistics.median(r["books"][key].seconds for r in runs)
            for key in runs[0]["books"]},
    }


def finding(t: dict[str, Any], imports: dict[str, float]) -> str:
    """The gap split into parts that add up, the processes importing TensorFlow/MLflow
    per the hook, and (with import times) imports as a share of each stage kind's time."""
    gap = t["pipeline_seconds"] - t["books_seconds"]
    parts = t["gap_seconds_by_part"]
    others = [k for k in sorted(t["stage_seconds_by_kind"]) if k not in PARTS[0][1] + PARTS[1][1]]
    text = (f"gap {gap:+.0f} s, in each run the sum of: Keras stages - model scripts "
            f"{parts['keras']:+.0f} s, "
            f"baseline stages - SGD scripts {parts['baseline']:+.0f} s, other stages ("
            f"{joined(others)}) {parts['other stages']:.0f} s, `dvc repro` outside any stage "
            f"process {t['dvc_overhead_seconds']:.0f} s (medians); processes importing "
            f"TensorFlow / MLflow: {t['pipeline_processes_with_tensorflow']:.0f} / "
            f"{t['pipeline_processes_with_mlflow']:.0f} stages vs "
            f"{t['books_processes_with_tensorflow']:.0f} / "
            f"{t['books_processes_with_mlflow']:.0f} scripts")
    if not imports:
        return text
    tax = t["import_tax_seconds"]
    kinds = sorted(t["stage_seconds_by_kind"])
    per_kind = {k: statistics.median(import_tax(run.get(k, []), imports)
                                     for run in t["imported_by_kind"]) for k in kinds}
    return (text + f"; imports, estimated from the {import_costs_text(imports)}: "
            f"stages {share(tax['pipeline'], t['stage_seconds'])}, scripts "
            f"{share(tax['books'], t['books_seconds'])}; by stage kind: "
            + joined(f"{k} {share(per_kind[k], t['stage_seconds_by_kind'][k])}" for k in kinds
                     if per_kind[k] > 0))
