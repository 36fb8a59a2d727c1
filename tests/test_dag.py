"""The DAG tells the truth: every stage lists the code it runs and the files it reads (and no
more), the committed dvc.lock matches the committed code, and keys that reuse a result
change with the code that makes it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml
from helpers.paths import ROOT, dvc_stages, locked_stages

from pipeline import lineage

DVC_YAML = dvc_stages()


def stage_module(stage: dict) -> str:
    match = re.fullmatch(r"python -m (pipeline\.\w+)( .*)?", (stage.get("do") or stage)["cmd"])
    assert match, f"a stage runs one pipeline module: {stage}"
    return match.group(1)


def code_deps(stage: dict) -> list[str]:
    deps = (stage.get("do") or stage)["deps"]
    return sorted(d for d in deps if d.startswith("pipeline/"))


@pytest.mark.parametrize("name", sorted(DVC_YAML))
def test_each_stage_lists_exactly_the_code_it_runs(name):
    """Every project module the stage's module imports (at module level or in a function,
    transitively) is a dep, and no other module is."""
    stage = DVC_YAML[name]
    expected = lineage.files(stage_module(stage))
    declared = code_deps(stage)
    assert declared == expected, (
        f"dvc.yaml stage {name}: missing {sorted(set(expected) - set(declared))}, "
        f"not run {sorted(set(declared) - set(expected))}")


def test_the_import_closure_follows_function_level_imports(tmp_path, monkeypatch):
    """A module imported only inside a function is part of the closure: the test above can't
    be fooled by a late import."""
    assert "pipeline.training" in lineage.direct_imports("pipeline.train")
    assert "pipeline.training" in lineage.closure("pipeline.train")
    source = (ROOT / "pipeline" / "train.py").read_text()
    assert "\nfrom pipeline.training" not in source  # imported inside train(), not at the top


def lock_entries(lock: dict) -> list[tuple[str, dict]]:
    return [(stage, dep) for stage, body in lock.items() for dep in body.get("deps", [])]


def test_the_committed_lock_matches_the_committed_code():
    """dvc.lock records each code dependency's md5 (and `check`'s of params.yaml): it must
    be the file's, or `dvc repro` results committed beside it came from other code."""
    lock = locked_stages()
    stale = []
    for stage, dep in lock_entries(lock):
        path = ROOT / dep["path"]
        if (dep["path"].startswith("pipeline/") or dep["path"] == "params.yaml") and (
                not path.is_file() or hashlib.md5(path.read_bytes()).hexdigest() != dep["md5"]):
            stale.append(f"{stage}: {dep['path']}")
    assert not stale, f"a lock is stale (run `dvc repro` and commit the dvc.lock files): {stale}"
    expanded = {f"{name}@{key}" if "foreach" in body else name
                for name, body in DVC_YAML.items()
                for key in (_foreach_keys(body) if "foreach" in body else [None])}
    assert set(lock) == expanded


def test_the_committed_lock_holds_the_committed_params():
    from omegaconf import OmegaConf

    params = OmegaConf.load(ROOT / "params.yaml")
    stale = []
    for stage, body in locked_stages().items():
        for key, value in body.get("params", {}).get("params.yaml", {}).items():
            current = OmegaConf.select(params, key)
            if OmegaConf.is_config(current):
                current = OmegaConf.to_container(current)
            if _normal(current) != _normal(value):
                stale.append(f"{stage}: {key}")
    assert not stale, f"dvc.lock holds other params than params.yaml: {stale}"


def _normal(value):
    """DVC writes lists of scalars and empty values its own way; compare the data."""
    return yaml.safe_load(yaml.safe_dump(value))


def _foreach_keys(body: dict) -> list[str]:
    group = body["foreach"].strip("${}")
    return list(yaml.safe_load((ROOT / "params.yaml").read_text())[group])


# --- what a real `dvc repro` opens --------------------------------------------------------

# Reads that are declared another way, or can't be: each with its reason.
ALWAYS_FINE = (
    re.compile(r"\.git(/.*)?"),  # MLflow's git tags (commit, dirty)
    re.compile(r"params\.yaml"),  # declared as the stage's `params` (`check`: a dep)
)
EXCEPTIONS = {
    # `check` runs first and always: it reads the state of the workspace (which datasets
    # are on stand-ins, the facts of the data as last prepared). Those are outputs of later
    # stages: DVC can't list them here (a cycle), and needn't (the stage always runs).
    # And its own memo of the last settings that passed (data/check.json): not an output,
    # so its machine-dependent hash stays out of the committed lock.
    "check": re.compile(r"data/check\.json|data/[^/]+/(raw(/.*)?|prepared/manifest\.json)"),
    # `train` keeps a trained model whose logging failed in models/.pending/<model>, keyed
    # by everything that decides it (pipeline/train.py): a retry store, like DVC's run-cache.
    "train": re.compile(r"models/\.pending(/.*)?"),
}


def _declared(path: str, paths: list[str]) -> bool:
    for declared in paths:
        parent = str(Path(declared).parent)
        name = Path(declared).name
        if path == declared or path.startswith(declared + "/"):
            return True  # the path, or inside it
        if declared.startswith(path + "/"):
            return True  # a folder above it (listed on the way)
        if Path(path).parent == Path(parent) and re.match(
                rf"\.{re.escape(name)}\.(tmp|part|old)-", Path(path).name):
            return True  # its temp sibling (pipeline/files.py)
        if re.match(rf"{re.escape(parent)}/\.{re.escape(name)}\.(tmp|part|old)-", path):
            return True  # inside its temp sibling
    return False


def test_stages_read_only_what_they_declare(built_project):
    """Every file a stage opened during the shared project's `dvc repro` (recorded by an audit
    hook, tests/helpers/audit) is a dep, an out, a code dep, or a documented exception."""
    lock = locked_stages(built_project.path)
    logs = sorted(built_project.audit.glob("*.txt"))
    def stage_of(log: Path) -> str:  # 'stages_check_dvc.yaml:check.<pid>.txt': check
        return log.name.rsplit(".", 2)[0].rsplit(":", 1)[-1]

    assert {stage_of(log) for log in logs} >= set(lock), "every stage was audited"
    problems = []
    for log in logs:
        stage = stage_of(log)
        body = lock[stage]
        deps = [d["path"] for d in body.get("deps", [])]
        outs = [o["path"] for o in body.get("outs", [])]
        exception = EXCEPTIONS.get(stage.split("@")[0])
        for path in filter(None, log.read_text().splitlines()):
            code = re.fullmatch(r"pipeline/(__pycache__/)?(\w+)(\.cpython-\d+)?\.(py|pyc)", path)
            if code:
                module = f"pipeline/{code.group(2)}.py"
                if module not in deps:
                    problems.append(f"{stage} ran {module}, not in its deps")
                continue
            if not (built_project.path / path).exists() or path.startswith("pipeline"):
                continue  # probed but absent (library lookups), or the code folder listed
            if any(p.fullmatch(path) for p in ALWAYS_FINE) or _declared(path, deps + outs):
                continue
            if exception is not None and exception.fullmatch(path):
                continue
            problems.append(f"{stage} read {path}, not declared")
    assert not problems, "\n".join(sorted(set(problems)))


# --- keys that reuse results change with the code -----------------------------------------


def test_training_key_changes_with_the_training_code(tmp_path):
    """The key of a kept training (train) and of a sweep trial: same config, data and code,
    same key; an edit anywhere in the code that trains gives a new one."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = ("from pipeline.lineage import code_digest; print(code_digest('pipeline.training'),"
              " code_digest('pipeline.report'))")

    def digests() -> list[str]:
        out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True,
                             capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)})
        return out.stdout.split()

    before = digests()
    assert digests() == before  # deterministic
    models = tmp_path / "pipeline" / "models.py"  # imported by the training code
    models.write_text(models.read_text() + "\n# an edit\n")
    after = digests()
    assert after[0] != before[0] and after[1] == before[1]  # report doesn't run models.py
