"""Sharing, without DVC or training: the champion chosen among pulled model files by the
registry's rule (pipeline/pulled.py), the review page's Markdown and HTML (pipeline/review.py)
and the share command's checks of a remote (pipeline/share.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.params import project_params

from pipeline import pulled, review, share
from pipeline.config import compose

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)


def trained(models: Path, name: str, history: dict, summary: dict | None = None,
            run_id: str | None = "ab" * 16) -> None:
    folder = models / name
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"zip")
    (folder / "history.json").write_text(json.dumps(history))
    (folder / "summary.json").write_text(json.dumps(summary or {}))
    if run_id:
        (folder / "run.json").write_text(json.dumps(
            {"run_id": run_id, "tracking_uri": "sqlite:////elsewhere/mlflow.db"}))


def test_pulled_champion_follows_the_registrys_rule(tmp_path):
    params = compose(project_params())
    fashion = [m for m, cfg in params.models.items() if cfg.dataset == "fashion_mnist"]
    assert len(fashion) == 2
    first, second = fashion
    models = tmp_path / "models"
    assert pulled.champion(params, "fashion_mnist", models) is None  # nothing pulled
    trained(models, first, {"val_accuracy": [0.80, 0.90, 0.85]})  # early stopping kept 0.90
    trained(models, second, {"val_accuracy": [0.90]}, run_id="cd" * 16)
    best = pulled.champion(params, "fashion_mnist", models)
    assert (best.name, best.metric, best.value) == (first, "val_accuracy", 0.90)  # equal: stays
    assert best.logged_to == "sqlite:////elsewhere/mlflow.db"
    (models / second / "history.json").write_text(json.dumps({"val_accuracy": [0.91]}))
    assert pulled.champion(params, "fashion_mnist", models).name == second
    assert pulled.with_run(params, "cd" * 16, models).name == second
    assert pulled.with_run(params, "ef" * 16, models) is None

    boston = [m for m, cfg in params.models.items() if cfg.dataset == "boston_housing"]
    for i, name in enumerate(boston):  # K-fold: the summary's mean over folds, lower wins
        trained(models, name, {"val_mae": [1.0]}, {"kfold_val_mae_mean": 2.5 - 0.1 * i})
    best = pulled.champion(params, "boston_housing", models)
    assert (best.name, best.metric) == (boston[-1], "kfold_val_mae_mean")
    (models / boston[-1] / "model.keras").unlink()  # not pulled: not a candidate
    assert pulled.champion(params, "boston_housing", models).name == boston[-2]


def page(source: dict) -> dict:
    return {"base": "main", "head": "workspace",
            "datasets": [{"dataset": "imdb", "source": source, "labels": ["-", "x <b>"]}],
            "params": [["params.yaml: seed", "42", "43"]],
            "metrics": [["results/imdb/baseline/metrics.json", "test_accuracy", "0.8000",
                         "0.8100", "0.0100"]],
            "plots": [{"name": "results/imdb/m/history.csv", "kind": "vega", "changed": True,
                       "spec": json.dumps({"title": "</script><b>"})},
                      {"name": "results/imdb/m/plots/a.png", "kind": "image", "changed": False,
                       "images": []}],
            "unread": ["results/imdb/m/plots/a.png at main: missing cache"]}


def test_review_page_markdown_and_html():
    stand_in = page({"kind": "generated", "label": "stand-in (synthetic)", "detail": "d"})
    md = review.to_markdown(stand_in, "out/review.html")
    assert md.startswith("# Review: workspace against main\n\n> **NOT REAL RESULTS")
    assert "> - imdb: stand-in (synthetic) (d)" in md
    assert "| imdb | - | x <b> |" in md
    assert "| params.yaml: seed | 42 | 43 |" in md
    assert "| results/imdb/baseline/metrics.json | test_accuracy | 0.8000 | 0.8100 | 0.0100 |" in md
    assert "- changed: `results/imdb/m/history.csv`" in md
    assert "1 plots unchanged; the changed ones are drawn in out/review.html" in md
    assert "- not compared: results/imdb/m/plots/a.png at main: missing cache; fetch" in md
    html = review.to_html(stand_in)
    assert "<td>x &lt;b&gt;</td>" in html  # escaped
    assert "<li>not compared: results/imdb/m/plots/a.png at main: missing cache; fetch" in html
    assert '"title": "<\\/script><b>"' in html  # a spec can't end its script element
    assert html.count("vegaEmbed(") == 1 and "cdn.jsdelivr.net/npm/vega-embed" in html
    real = page({"kind": "canonical", "label": "real"})
    assert "NOT REAL" not in review.to_markdown(real) and "NOT REAL" not in review.to_html(real)


def test_share_checks_the_remote_before_dvc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(share.RemoteError, match=r"is not a DVC project's root .*Fix: run"):
        share.find_remote(None)
    folder = share.Remote("team", str(tmp_path / "team"))
    assert folder.local == tmp_path / "team"
    assert share.Remote("t", "file:///mnt/x").local == Path("/mnt/x")
    with pytest.raises(share.RemoteError, match=r"DVC remote 'team' \(.*team\) can't be "
                       r"reached: no such folder \(not mounted\?\)\. Fix: mount"):
        share.check_reachable(folder, "pull")
    (tmp_path / "team").mkdir()
    share.check_reachable(folder, "push")
    missing = [s for s, extra in share.PLUGINS.items()
               if __import__("importlib").util.find_spec(f"dvc_{extra}") is None]
    for scheme in missing[:2]:
        with pytest.raises(share.RemoteError, match=rf"needs DVC's {scheme} support, which "
                           rf"isn't installed\. Fix: `uv add \"dvc\[{share.PLUGINS[scheme]}\]=="):
            share.check_reachable(share.Remote("r", f"{scheme}://host/path"), "push")


def test_review_refuses_a_revision_git_doesnt_know(tmp_path, monkeypatch):
    import subprocess

    from pipeline.errors import DataError

    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    with pytest.raises(DataError, match=r"^'nope' is not a git revision of this repository\. "
                       r"Fix: name a branch, tag or commit"):
        review.check_revision("nope")
