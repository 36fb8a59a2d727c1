"""Where things are: the repository root (its params.yaml, dvc.yaml, pipeline/, conf/)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
