"""Row 2, edit one model: change one model's learning rate and `dvc repro` (that model's
train and evaluate, the report, the always-run check) against running the books' script
for that model: the loop of someone tuning by hand. Target ≤ 1.25x.

The books' script pays its data loading and vectorizing every time; the pipeline pays
a process per stage, each with its own imports and its own connection to the tracking
store. The finding splits the pipeline's seconds by stage process."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from benchmarks.findings import joined, seconds_text
from benchmarks.render import Row
from benchmarks.rows.param_change import nudged
from benchmarks.workspace import BOOK_SCRIPTS, BenchError, is_stage, say

if TYPE_CHECKING:
    from benchmarks.suite import Suite

TARGET = 1.25
PREFERRED = ("imdb_dense", "mnist_dense", "reuters_dense")  # a book script, minutes at most


def edited_model(suite: Suite) -> str:
    """--edit-model, else the first preferred model (then any with a books' script)."""
    if suite.args.edit_model:
        return suite.args.edit_model
    for model in (*PREFERRED, *BOOK_SCRIPTS):
        if model in suite.models and model in BOOK_SCRIPTS:
            return model
    raise BenchError("edit row: no model of --datasets has a books' script")


def build(suite: Suite) -> list[Row]:
    """Toggle the learning rate --repeats times (no run-cache: each edit trains), the
    order of the sides alternating."""
    model = edited_model(suite)
    if model not in BOOK_SCRIPTS:
        raise BenchError(f"--edit-model {model}: no books' script to compare with; "
                         f"choose one of {', '.join(BOOK_SCRIPTS)}")
    dataset = suite.models[model]
    key = f"models.{model}.optimizer.learning_rate"
    original = suite.ws.get(key)
    changed = nudged(key, original)
    say(f"edit one model: bringing {model}'s outputs up to date first ...")
    suite.ws.repro()
    # Once more, as in a loop already going: the first `check` ran before `prepare`, so it
    # hasn't asked Keras about the models on their prepared data yet (the next one does).
    suite.ws.repro()
    samples: list[dict[str, Any]] = []
    for r in range(suite.args.repeats):
        suite.ws.set(key, changed if r % 2 == 0 else original)
        say(f"edit one model {r + 1}/{suite.args.repeats}: {key}={suite.ws.get(key)} ...")
        sample: dict[str, Any] = {}
        for side in (("pipeline", "books") if r % 2 == 0 else ("books", "pipeline")):
            if side == "pipeline":
                timed = suite.ws.repro("--no-run-cache")
                stages = {p.name: p.seconds for p in timed.procs if is_stage(p.name)}
                sample.update(pipeline=timed.seconds, stages=stages,
                              outside=timed.seconds - sum(stages.values()),
                              imported={p.name: p.imported for p in timed.procs
                                        if is_stage(p.name)})
            else:
                sample["books"] = suite.ws.book(model, dataset)[0].seconds
        samples.append(sample)
    if suite.ws.get(key) != original:
        suite.ws.set(key, original)
        suite.ws.repro()  # leave the workspace as params.yaml says, for the next rows
    expected = {"check", f"train@{model}", f"evaluate@{model}", "report"}
    ran = set(samples[0]["stages"])
    if ran != expected:
        raise BenchError(f"edit row: `dvc repro` ran {sorted(ran)}, not {sorted(expected)}")
    ratios = [s["pipeline"] / s["books"] for s in samples]
    ratio = statistics.median(ratios)
    met = ratio <= TARGET
    return [Row("2 time", f"edit one model: `{key}` {original}↔{changed}, `dvc repro` (check, "
                f"train, evaluate, report) vs the books' {BOOK_SCRIPTS[model]}, "
                f"n={len(samples)}",
                seconds_text([s["pipeline"] for s in samples]),
                seconds_text([s["books"] for s in samples]),
                ratio, min(ratios), max(ratios), f"≤ {TARGET}x", met,
                "" if met else finding(samples),
                {"samples": samples})]


def finding(samples: list[dict[str, Any]]) -> str:
    """Each stage process's seconds and heavy imports, and `dvc repro` outside them
    (medians over the repeats), against the books' script."""
    names = sorted(samples[0]["stages"], key=lambda n: -samples[0]["stages"][n])
    parts = [f"{name} {statistics.median(s['stages'][name] for s in samples):.1f} s "
             f"(imports {joined(samples[0]['imported'][name])})" for name in names]
    outside = statistics.median(s["outside"] for s in samples)
    books = statistics.median(s["books"] for s in samples)
    return (f"stage processes: {joined(parts)}; `dvc repro` outside them {outside:.1f} s; "
            f"the books' script {books:.1f} s in one process")
