"""Command `share`: send this project's results to the team's DVC remote, or fetch them.

    python -m pipeline.share push    # data, prepared splits, models, plots, report, run-cache
    python -m pipeline.share pull    # on a teammate's clone: then `dvc repro` trains nothing

DVC does the work (`dvc push --run-cache`, `dvc pull --run-cache`); this command checks the
remote first and turns DVC's multi-line failures (no remote set, a folder that isn't there,
a missing plugin, a push cut off midway) into one line naming the remote and the fix.
Transfers are content-addressed: a rerun sends only what the remote lacks, and a cut push
never touches the local cache or the workspace. Not part of any DVC stage.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from pipeline import cli
from pipeline.console import interrupted
from pipeline.errors import PipelineError, error_line

log = logging.getLogger("pipeline.share")

EXAMPLE = "dvc remote add -d team /mnt/team/dvc"  # the README's one setting
# URL schemes whose DVC support is a separate package (the `dvc[<extra>]` extra):
# module dvc_<extra>. http(s) comes with DVC itself.
PLUGINS = {"s3": "s3", "ssh": "ssh", "gs": "gs", "azure": "azure", "gdrive": "gdrive",
           "webdav": "webdav", "webdavs": "webdav", "hdfs": "hdfs", "oss": "oss"}
RERUN = {"push": "python -m pipeline.share push", "pull": "python -m pipeline.share pull"}


class RemoteError(PipelineError):
    """The DVC remote can't be used as configured (said in one line with its fix)."""


@dataclass(frozen=True)
class Remote:
    name: str
    url: str

    def __str__(self) -> str:
        return f"DVC remote '{self.name}' ({self.url})"

    @property
    def local(self) -> Path | None:
        """The folder of a local or mounted remote (NFS, a shared drive), else None."""
        if "://" not in self.url:
            return Path(self.url)
        return Path(self.url.removeprefix("file://")) if self.url.startswith("file://") else None


def find_remote(name: str | None) -> Remote:
    """The remote to use (`name`, else the default one), from DVC's own merged config."""
    if not Path(".dvc").is_dir():
        raise RemoteError(f"{Path.cwd()} is not a DVC project's root (no .dvc folder). Fix: "
                          "run the command from the project's root")
    from dvc.config import Config

    config = Config.from_cwd()
    remotes = {key: str(value.get("url", "")) for key, value in config["remote"].items()}
    chosen = name or config["core"].get("remote")
    if not chosen:
        raise RemoteError("no DVC remote is set, so there is nowhere to share data, models "
                          f"and the run-cache. Fix: `{EXAMPLE}` (a shared folder; S3 and SSH: "
                          "README, Sharing results with a team), then commit .dvc/config")
    if chosen not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise RemoteError(f"DVC remote '{chosen}' is not configured (configured: {known}). "
                          f"Fix: `dvc remote add {chosen} <url>`, or pick one of those")
    return Remote(chosen, remotes[chosen])


def check_reachable(remote: Remote, action: str) -> None:
    """What can be checked without DVC: a local folder exists (a share that isn't mounted
    looks like an empty folder to nobody), a plugin for the URL's scheme is installed."""
    folder = remote.local
    if folder is not None:
        if not folder.is_dir():
            raise RemoteError(f"{remote} can't be reached: no such folder (not mounted?). Fix: "
                              f"mount the share or create the folder (`mkdir -p {folder}`), "
                              f"or point the remote at it: `dvc remote modify {remote.name} "
                              "url <folder>`")
        if action == "push" and not os.access(folder, os.W_OK | os.X_OK):
            raise RemoteError(f"{remote} is not writable by this user. Fix: ask its owner "
                              "for write access, or push to another remote with --remote")
        return
    scheme = remote.url.split("://", 1)[0].lower()
    extra = PLUGINS.get(scheme)
    if extra and importlib.util.find_spec(f"dvc_{extra}") is None:
        raise RemoteError(f"{remote} needs DVC's {scheme} support, which isn't installed. Fix: "
                          f"`uv add \"dvc[{extra}]=={_dvc_version()}\"` (pins it in uv.lock for "
                          "the whole team), then rerun")


def _dvc_version() -> str:
    from importlib.metadata import version

    return version("dvc")


def transfer(action: str, remote: Remote, jobs: int | None = None) -> str:
    """Run `dvc <action> --run-cache` against the remote; DVC's summary line on success."""
    command = [sys.executable, "-m", "dvc", action, "--run-cache", "-r", remote.name]
    if jobs is not None:
        command += ["--jobs", str(jobs)]
    verb = {"push": "to", "pull": "from"}[action]
    log.info("share: %s %s %s: data, prepared splits, models, results and the run-cache",
             action, verb, remote)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        out, err = process.communicate()
    except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM (console.run_stage's handler)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        _stopped(action, remote, f"stopped by {interrupted(stop)}")
    if process.returncode < 0:  # DVC itself was killed: a cut transfer
        _stopped(action, remote, f"dvc was killed by {signal.Signals(-process.returncode).name}")
    if process.returncode != 0:
        raise RemoteError(f"{action} {verb} {remote} failed: {_dvc_error(out + err)}. Nothing "
                          f"local was lost. Fix: {_fix(action, remote, out + err)}")
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else "done"


def _stopped(action: str, remote: Remote, why: str) -> NoReturn:
    """One line for a transfer cut off midway, then exit 130 (as console.run_stage does)."""
    kept = ("what reached the remote stays there and the local DVC cache and workspace are "
            "untouched" if action == "push" else
            "files already fetched stay in the local DVC cache")
    log.error("ERROR %s %s %s was cut off (%s): %s. Fix: rerun `%s`: it transfers only what "
              "is missing", action, "to" if action == "push" else "from", remote, why, kept,
              RERUN[action])
    sys.exit(130)


def _dvc_error(output: str) -> str:
    """DVC's own error, as one line: its ERROR lines and the paths it lists after one
    ("Checkout failed for following targets:"), a few named and counted."""
    lines = output.splitlines()
    parts = []
    for i, line in enumerate(lines):
        if "ERROR:" not in line:
            continue
        paths = []
        for follow in lines[i + 1:]:
            if not follow.strip() or " " in follow.strip() or follow.startswith("<"):
                break
            paths.append(follow.strip())
        text = line.split("ERROR:", 1)[1].strip()
        if paths:
            text = (f"{text.rstrip(':')}: {', '.join(paths[:4])}"
                    f"{f', ... ({len(paths)} in all)' if len(paths) > 4 else ''}")
        parts.append(text)
    text = error_line(RuntimeError(" ".join(parts) or output[-300:]))
    text = re.sub(r"\s*Learn more at.*$", "", text)
    return text[:400] or "no message from DVC"


def _fix(action: str, remote: Remote, output: str) -> str:
    """The fix for what DVC said (a plugin, missing files on the remote), else: reach it."""
    missing = re.search(r"No module named '?dvc_(\w+)", output)
    if missing:
        return f"`uv add \"dvc[{missing.group(1)}]=={_dvc_version()}\"`, then rerun"
    if action == "pull" and re.search(r"failed to (download|pull)|missing", output):
        return ("whoever ran those stages runs `python -m pipeline.share push`; or rebuild "
                "here with `dvc repro`")
    return (f"check that {remote.url} is reachable from here and its credentials "
            f"(`dvc remote modify {remote.name} ...`), then rerun `{RERUN[action]}`")


def share(action: str, remote_name: str | None, jobs: int | None = None) -> str:
    remote = find_remote(remote_name)
    check_reachable(remote, action)
    summary = transfer(action, remote, jobs)
    after = ("teammates get it with `python -m pipeline.share pull`" if action == "push" else
             "`dvc repro` now reruns nothing that was pushed")
    log.info("share: %s %s: %s; %s", action, remote, summary, after)
    return summary


def main(argv: list[str] | None = None) -> None:
    # No --params (cli.command's): nothing here reads params.yaml; DVC's config says it all.
    parser = argparse.ArgumentParser(prog="python -m pipeline.share",
                                     description=__doc__.split("\n\n")[0])
    parser.set_defaults(params=None)
    parser.add_argument("action", choices=("push", "pull"),
                        help="push: send to the remote; pull: fetch from it")
    parser.add_argument("--remote", "-r", default=None,
                        help="a DVC remote's name (default: the default remote, `dvc remote "
                             "add -d`)")
    parser.add_argument("--jobs", "-j", type=cli.count, default=None,
                        help="parallel transfers (default: DVC's)")
    cli.run(parser, argv, lambda args: share(args.action, args.remote, args.jobs))


if __name__ == "__main__":
    main()
