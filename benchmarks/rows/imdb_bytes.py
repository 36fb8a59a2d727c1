"""Row 3, IMDB bytes: the prepared IMDB features (CSR) against the dense float64 matrix
the book's `vectorize_sequences` builds, per split, from the prepared data's manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.render import Row

if TYPE_CHECKING:
    from benchmarks.suite import Suite


def build(suite: Suite) -> list[Row]:
    """One line per split; none without imdb or before `prepare@imdb` ran."""
    manifest = suite.ws.manifest("imdb") if "imdb" in suite.datasets else None
    if manifest is None:
        return []
    rows = []
    for split, info in manifest["splits"].items():
        dense = info["rows"] * info["x_shape"][1] * 8  # the books' np.zeros float64 matrix
        ratio = info["x_bytes"] / dense
        rows.append(Row("3 memory", f"imdb {split} features ({info['rows']:,} rows): CSR bytes "
                        "vs the books' dense float64 matrix",
                        f"{info['x_bytes'] / 1e6:.1f} MB", f"{dense / 1e9:.2f} GB",
                        ratio, target="≤ 2%", met=ratio <= 0.02,
                        cause="" if ratio <= 0.02 else finding(info),
                        values={"csr_bytes": info["x_bytes"], "dense_bytes": dense}))
    return rows


def finding(info: dict[str, Any]) -> str:
    """The ratio is density x (CSR bytes per stored value / 8): both from the manifest."""
    rows, columns = info["rows"], info["x_shape"][1]
    if not info.get("nnz"):
        return (f"{info['x_bytes'] / max(rows, 1):,.0f} bytes per row vs {columns * 8:,} "
                "dense (the manifest has no stored-value count)")
    nnz = info["nnz"]
    return (f"{nnz / max(rows, 1):,.1f} stored values per row of {columns:,} columns "
            f"({nnz / max(rows * columns, 1):.2%} non-zero), {info['x_bytes'] / nnz:.1f} CSR "
            "bytes per stored value vs 8 per dense cell")
