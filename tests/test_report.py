"""The report stage: rows per model, the books' figures, the data labels and the NOT REAL
banner (synthetic data only), embedded plots."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers.params import project_params

from pipeline.config import compose
from pipeline.report import report

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000100a5f67d6a0000000049454e44ae426082")


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data)) if not isinstance(data, bytes) else path.write_bytes(data)


SUBSET = "real subset (5,000 of 60,000 training images)"


def fake_results(root: Path, kinds: dict[str, str | tuple[str, str]]) -> None:
    """Results of every model of these datasets; a kind, or (kind, label) as `prepare`
    writes it (a card without a label is one written before labels existed)."""
    params = compose(project_params())
    for name, kind in kinds.items():
        kind, label = kind if isinstance(kind, tuple) else (kind, None)
        write(root / "results" / name / "data.json",
              {"source": {"kind": kind, "detail": f"{kind} detail",
                          **({"label": label} if label else {})}})
        write(root / "results" / name / "baseline" / "metrics.json",
              {"cv_accuracy": 0.81, "val_accuracy": 0.8, "test_accuracy": 0.79, "test_loss": 0.5,
               "cv_mae": 3.1, "test_mae": 3.2, "test_mse": 20.0})
        for model, cfg in params.models.items():
            if cfg.dataset != name:
                continue
            write(root / "results" / name / model / "metrics.json",
                  {"test_accuracy": 0.876, "test_loss": 0.31, "test_mae": 2.6, "epochs": 4})
            write(root / "results" / name / model / "plots" / "learning_curves.png", PNG)
            write(root / "models" / model / "history.json",
                  {"loss": [1, 0.5], "val_accuracy": [0.8, 0.85], "val_mae": [3.0, 2.7]})
            write(root / "models" / model / "summary.json", {"train_seconds": 12.34})


def test_report_compares_models_and_warns_about_stand_ins(tmp_path):
    fake_results(tmp_path, {"imdb": "generated", "boston_housing": "canonical",
                            "mnist": "bundled", "reuters": "mirror",
                            "fashion_mnist": "canonical"})
    params = compose(project_params())
    report(params, tmp_path / "results", tmp_path / "models", tmp_path / "reports")

    md = (tmp_path / "reports" / "report.md").read_text()
    banner, note = md.split("## ")[0].split("Not the full, proven real data")
    assert "NOT REAL RESULTS" in banner
    assert "imdb: stand-in (synthetic)" in banner and "mnist" not in banner
    assert "mnist: bundled (unverified)" in note  # an old card: nothing proves it real
    assert "boston_housing" not in banner + note and "reuters" not in banner + note
    imdb = md.split("## imdb")[1].split("## ")[0]
    assert "| baseline (SGD linear) | 0.8100 | 0.8000 | 0.7900 |" in imdb
    assert ("| imdb_dense | - | 0.8500 | 0.8760 | single seed (42), not measured | "
            "book ~0.88: 0.0040 worse | 0.3100 | 4 | 12.3 |") in imdb  # the book's gap
    assert "Published (the books): dense 16-16-1 (DLwP ch. 3)" in imdb
    boston = md.split("## boston_housing")[1]
    assert "val mae" in boston and "| boston_housing_dense | - | 2.7000 | 2.6000 |" in boston
    assert "| book ~2.5: 0.1000 worse |" in boston
    assert "](../results/imdb/imdb_dense/plots/learning_curves.png)" in imdb

    page = (tmp_path / "reports" / "report.html").read_text()
    assert "NOT REAL RESULTS" in page and 'class="banner"' in page
    assert "data:image/png;base64," in page
    assert not re.search(r"src='(?!data:)", page)  # self-contained: no external files


def test_only_synthetic_data_is_called_not_real(tmp_path):
    fake_results(tmp_path, {"imdb": ("generated", "stand-in (synthetic)"),
                            "boston_housing": ("bundled", "real (identical to canonical)"),
                            "mnist": ("bundled", SUBSET),
                            "reuters": ("bundled", "bundled (unverified)"),
                            "fashion_mnist": ("canonical", "real")})
    report(compose(project_params()), tmp_path / "results", tmp_path / "models",
           tmp_path / "reports")

    md = (tmp_path / "reports" / "report.md").read_text()
    top = md.split("## ")[0]
    banner, note = top.split("Not the full, proven real data")
    assert "NOT REAL RESULTS" in banner and "imdb: stand-in (synthetic)" in banner
    assert "mnist" not in banner and "boston" not in banner and "reuters" not in banner
    assert f"mnist: {SUBSET}" in note and "reuters: bundled (unverified)" in note
    assert "boston" not in top and "fashion" not in top  # proven real: nothing to say
    assert "## boston_housing (regression, data: real (identical to canonical))" in md
    assert f"## mnist (multiclass, data: {SUBSET})" in md
    assert "## fashion_mnist (multiclass, data: real)" in md

    page = (tmp_path / "reports" / "report.html").read_text()
    html_banner = page.split('<div class="banner">')[1].split("</div>")[0]
    html_note = page.split('<div class="note">')[1].split("</div>")[0]
    assert "NOT REAL RESULTS" in html_banner and "imdb: stand-in (synthetic)" in html_banner
    assert "mnist" not in html_banner and f"mnist: {SUBSET}" in html_note
    assert "boston" not in html_banner + html_note
    assert "boston_housing (regression, data: real (identical to canonical))</h2>" in page


def test_no_banner_when_every_dataset_is_real(tmp_path):
    kinds = dict.fromkeys(["mnist", "fashion_mnist", "imdb", "reuters"], "canonical")
    kinds["boston_housing"] = ("bundled", "real (identical to canonical)")
    fake_results(tmp_path, kinds)
    report(compose(project_params()), tmp_path / "results", tmp_path / "models",
           tmp_path / "reports")
    md = (tmp_path / "reports" / "report.md").read_text()
    assert "NOT REAL" not in md and "Not the full" not in md
    assert not any(line.startswith(">") for line in md.split("## ")[0].splitlines())
    page = (tmp_path / "reports" / "report.html").read_text()
    assert 'class="banner"' not in page and 'class="note"' not in page


def test_the_seed_spread_is_shown_and_flagged_when_it_is_for_other_settings(tmp_path):
    """A seed study's record beside the model: its spread when it was measured for the
    model shown (same training key), flagged when for other code or other settings."""
    fake_results(tmp_path, {"imdb": "canonical", "boston_housing": "canonical"})
    params = compose(project_params())
    config = json.loads(json.dumps(project_params()["models"]["boston_housing_dense"]))
    write(tmp_path / "models/imdb_dense/training_key.json", {"key": "abc"})
    write(tmp_path / "models/boston_housing_dense/training_key.json", {"key": "new"})
    write(tmp_path / "models/boston_housing_book/training_key.json", {"key": "new"})
    study = {"metric": "test_mae", "seeds": [42, 43, 44, 45, 46], "mean": 2.496, "sd": 0.058,
             "min": 2.43, "max": 2.58}
    write(tmp_path / "results/imdb/imdb_dense/seeds.json",
          {**study, "metric": "test_accuracy", "mean": 0.87, "sd": 0.004, "min": 0.865,
           "max": 0.875, "training_key": "abc"})
    write(tmp_path / "results/boston_housing/boston_housing_dense/seeds.json",
          {**study, "training_key": "old", "config": config})
    write(tmp_path / "results/boston_housing/boston_housing_book/seeds.json",
          {**study, "training_key": "old", "config": {**config, "epochs": 1}})
    report(params, tmp_path / "results", tmp_path / "models", tmp_path / "reports")

    md = (tmp_path / "reports" / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines()
            if line.startswith("| ")}
    assert "| ± 0.0040 (5 seeds: 0.8700, 0.8650-0.8750) |" in rows["imdb_dense"]
    assert "± 0.0580 (5 seeds: 2.4960, 2.4300-2.5800) measured with earlier code" \
        in rows["boston_housing_dense"]
    assert "measured for other settings" in rows["boston_housing_book"]
    assert "pipeline.seed_study" in md.split("## ")[0]  # how to measure one
    page = (tmp_path / "reports" / "report.html").read_text()
    assert "± 0.0040 (5 seeds: 0.8700, 0.8650-0.8750)" in page
