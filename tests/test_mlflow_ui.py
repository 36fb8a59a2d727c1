"""The MLflow UI in a real browser: what a person sees after `dvc repro`.

The real stages (baseline, train, evaluate of IMDB, tiny data) fill a throw-away sqlite
store, the default one; `mlflow ui` serves it, light, on 127.0.0.1; Playwright drives
Debian's chromium through the UI as a person would: the experiment, its runs, both
selected and compared, and a Keras run's own pages: its logged model and datasets, its
per-epoch charts, its K-fold child runs and curve. The numbers on screen are checked
against the store, and full-page screenshots are kept in test-artifacts/ to look at.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from helpers.paths import ROOT
from helpers.servers import mlflow_server, prepared_project, require, run_stages, warm_up

mlflow = pytest.importorskip("mlflow")

DATASET, MODEL = "imdb", "imdb_dense"
KFOLD_DATASET, KFOLD_MODEL = "boston_housing", "boston_housing_dense"  # the book's K-fold
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
INSTALL_CHROMIUM = ("apt-get install -y --no-install-recommends chromium "
                    "(as root; `bash .ci/run` does it)")
# Headless in a closed network: without the background-networking flags chromium keeps
# dialing Google's hosts; as root it needs --no-sandbox.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 60_000

# The cells a person reads on one line of a table: the label, then what lies to its right
# at the same height. Layout, not CSS classes: MLflow's markup changes between releases.
ROW_JS = """(label) => {
  const centre = r => r.top + r.height / 2;
  const seen = e => {  // on screen: not clipped away by a scrolled or virtualised table
    const r = e.getBoundingClientRect();
    if (r.height === 0) return false;
    const hit = document.elementFromPoint(r.left + Math.min(r.width / 2, 5), centre(r));
    return hit !== null && (hit === e || e.contains(hit) || hit.contains(e));
  };
  const heads = [...document.querySelectorAll('body *')]
    .filter(e => e.textContent.trim() === label && seen(e));
  if (!heads.length) return null;
  const head = heads[heads.length - 1].getBoundingClientRect();
  return [...document.querySelectorAll('body *')]
    .filter(e => e.children.length === 0 && e.textContent.trim() && seen(e))
    .map(e => [e.getBoundingClientRect(), e.textContent.trim()])
    .filter(([r]) => r.left >= head.right && Math.abs(centre(r) - centre(head)) < 4)
    .sort((a, b) => a[0].left - b[0].left).map(([, text]) => text);
}"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An sqlite store holding a baseline run and a Keras run of IMDB, made by the stages,
    and `mlflow ui` over it. The UI starts first (it creates the tables) and boots while
    the data is prepared; the stages write the store directly, as `dvc repro` does."""
    sync_playwright()  # no browser, no point in filling a store
    root = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous_uri = mlflow.get_tracking_uri()
    with mlflow_server("ui", uri, root) as ui, pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(root)  # artifacts go to ./mlruns beside the store
        project = prepared_project(root, (DATASET, KFOLD_DATASET), tracking_uri=uri)
        warm_up()
        ui.ready()  # its schema is in place before the stages open the store
        results = run_stages(project, DATASET, MODEL)
        run_stages(project, KFOLD_DATASET, KFOLD_MODEL)
        mlflow.set_tracking_uri(previous_uri)
        client = mlflow.MlflowClient(tracking_uri=uri)

        def top_level_runs(dataset: str) -> dict:  # by kind, not their K-fold fold runs
            experiment = client.get_experiment_by_name(dataset)
            return {run.data.tags["model_kind"].split()[0]: run
                    for run in client.search_runs([experiment.experiment_id])
                    if "mlflow.parentRunId" not in run.data.tags}

        yield {"root": root, "uri": uri, "url": ui.url, "runs": top_level_runs(DATASET),
               "kfold_runs": top_level_runs(KFOLD_DATASET), "client": client,
               "project": project, **results}


def shown_close_to(shown: str, stored: float) -> bool:
    """The UI rounds for display: agree to the digits it shows."""
    decimals = len(shown.partition(".")[2])
    return abs(float(shown) - stored) <= 0.5 * 10 ** -decimals + 1e-9


def body_text(page, *expected: str) -> str:
    """The page's text once it shows every `expected` string, or after the page timeout
    (the caller asserts): parts of MLflow's pages load after the page does."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        text = page.inner_text("body")
        if all(e in text for e in expected) or time.monotonic() > deadline:
            return text
        page.wait_for_timeout(250)


def sync_playwright():
    """Playwright's entry point, once chromium and playwright are known to be there."""
    require(CHROMIUM.is_file(), f"chromium ({CHROMIUM})", INSTALL_CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        require(False, "playwright (the Python package)", "uv sync --locked (dev group)")
    return start()


def test_runs_compare_side_by_side_in_the_browser(store):
    runs = store["runs"]
    assert set(runs) == {"baseline", "keras"}, "the stages did not log both runs"
    names = {kind: run.info.run_name for kind, run in runs.items()}
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "mlflow-ui-compare.png"

    with sync_playwright() as pw:
        started = time.monotonic()
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{store['url']}/#/experiments", wait_until="load")
            page.get_by_text("Model training", exact=True).click()  # not the GenAI views
            page.get_by_role("link", name=DATASET, exact=True).click()

            # the experiment lists both runs
            for name in names.values():
                page.get_by_text(name, exact=True).wait_for()
            assistant = page.get_by_role("button", name="Close")
            if assistant.count():  # the assistant panel narrows the table
                assistant.first.click()
            for name in names.values():
                page.get_by_role("row").filter(has_text=name).get_by_role(
                    "checkbox", name=re.compile("toggle row selection")).check()
            page.get_by_role("button", name="Compare", exact=True).click()
            page.get_by_text("Comparing 2 Runs", exact=False).wait_for()
            page.get_by_text("test_accuracy", exact=True).first.wait_for()
            for section in ("Visualizations", "Parameters"):  # run details + metrics in view
                page.get_by_text(section, exact=True).first.click()
            page.wait_for_timeout(500)
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"browser part: {time.monotonic() - started:.1f}s; screenshot: {screenshot}")

            # one column per run, in the order of the Run ID row
            ids = page.evaluate(ROW_JS, "Run ID:")
            assert sorted(ids or []) == sorted(r.info.run_id for r in runs.values()), ids
            column = {kind: ids.index(run.info.run_id) for kind, run in runs.items()}
            shown_names = page.evaluate(ROW_JS, "Run Name:")
            assert all(shown_names[column[k]] == names[k] for k in runs), shown_names

            # The metrics table shows its first rows (alphabetical) without scrolling, and
            # MLflow misaligns names and values once it is scrolled: read those rows only.
            # The shared test metric, on one line, equal to what the store holds:
            cells = page.evaluate(ROW_JS, "test_accuracy")
            assert cells and len(cells) == 2, f"test_accuracy: {cells}"
            for kind, run in runs.items():
                shown, stored = cells[column[kind]], run.data.metrics["test_accuracy"]
                assert shown_close_to(shown, stored), f"test_accuracy {kind}: {shown} vs {stored}"
            # each kind's own metric: a value for its run, NaN (not logged) for the other
            for metric, owner, other in (("loss", "keras", "baseline"),
                                         ("cv_accuracy", "baseline", "keras")):
                cells = page.evaluate(ROW_JS, metric)
                assert cells and len(cells) == 2, f"{metric}: {cells}"
                assert cells[column[other]] == "NaN", f"{metric}: {cells}"
                assert shown_close_to(cells[column[owner]], runs[owner].data.metrics[metric])
            assert not page.get_by_text("Something went wrong").count(), (
                f"the compare page shows an error; see {screenshot}")
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


def browse(pw):
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                 args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    page.set_default_timeout(TIMEOUT_MS)
    return browser, page


def close_assistant(page) -> None:
    assistant = page.get_by_role("button", name="Close")
    if assistant.count():  # the assistant panel narrows the page
        assistant.first.click()


def test_a_keras_run_shows_its_model_datasets_curves_and_figures(store):
    """The runs table fills the Dataset and Models cells of a Keras run; its page lists its
    datasets, logged model, registered version and K-fold child runs; its charts draw one
    point per epoch (the folds' mean validation curve too); the K-fold figure is among
    its artifacts, previewed as an image."""
    from pipeline import layout
    from pipeline.run_log import split_digest

    client = store["client"]
    keras_run = store["runs"]["keras"]
    kfold_run = store["kfold_runs"]["keras"]
    experiment = kfold_run.info.experiment_id
    manifest = layout.read_manifest(layout.prepared_dir(store["project"]["data"], DATASET))
    digest = split_digest(manifest["splits"]["train"]["sha256"])
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {name: ARTIFACTS / f"mlflow-ui-{name}.png"
             for name in ("runs", "run", "charts", "artifacts")}

    with sync_playwright() as pw:
        browser, page = browse(pw)
        try:
            # the runs table: the Keras run's Dataset and Models cells
            page.goto(f"{store['url']}/#/experiments/{keras_run.info.experiment_id}/runs",
                      wait_until="load")
            page.get_by_text(f"{DATASET}/train", exact=False).first.wait_for()
            close_assistant(page)
            page.wait_for_timeout(300)
            cells = page.evaluate(ROW_JS, keras_run.info.run_name) or []
            assert any(c.startswith(f"{DATASET}/train (") and digest[:9] in c for c in cells), (
                f"the Dataset cell: {cells}")
            assert "model" in cells, f"the Models cell (the logged model's name): {cells}"
            page.screenshot(path=str(shots["runs"]), full_page=True)

            # the K-fold run's page: datasets, logged model, registered version, folds
            base = f"{store['url']}/#/experiments/{experiment}/runs/{kfold_run.info.run_id}"
            page.goto(base, wait_until="load")
            page.get_by_text("Child runs", exact=True).wait_for()
            close_assistant(page)
            page.get_by_text(f"{KFOLD_DATASET}/train", exact=False).first.wait_for()
            text = body_text(page, "fold 1/2", "fold 2/2")  # child runs load after the page
            assert "fold 1/2" in text and "fold 2/2" in text, "no K-fold child runs"
            assert "Logged models (1)" in text or "Logged models" in text
            (version,) = client.search_model_versions(
                f"name='{KFOLD_DATASET}' and run_id='{kfold_run.info.run_id}'")
            assert f"v{version.version}" in text, "the registered version is not shown"
            page.screenshot(path=str(shots["run"]), full_page=True)

            # its charts: one point per epoch, and the folds' mean validation curve
            page.goto(f"{base}/model-metrics", wait_until="load")
            page.get_by_text("kfold_curve_val_mae", exact=True).first.wait_for()
            epochs = len(client.get_metric_history(kfold_run.info.run_id, "loss"))
            deadline = time.monotonic() + TIMEOUT_MS / 1000
            while True:  # plotly draws after the names appear: slower on a busy machine
                points = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
                    .flatMap(p => (p.data || []).map(t => (t.x || []).length))""")
                if points.count(epochs) >= 2 or time.monotonic() > deadline:
                    break
                page.wait_for_timeout(250)
            assert epochs > 1 and points.count(epochs) >= 2, (epochs, points)
            page.screenshot(path=str(shots["charts"]), full_page=True)

            # its artifacts: the K-fold figure, previewed
            page.goto(f"{base}/artifacts", wait_until="load")
            page.get_by_text("plots", exact=True).first.click()
            close_assistant(page)
            page.get_by_text("kfold_validation.png", exact=True).first.click()
            page.locator("img[src*='kfold_validation.png'], img[alt*='kfold_validation']"
                         ).first.wait_for()
            page.screenshot(path=str(shots["artifacts"]), full_page=True)
        finally:
            browser.close()
    for shot in shots.values():
        assert shot.stat().st_size > 10_000, shot
    print("screenshots:", ", ".join(str(s) for s in shots.values()))
