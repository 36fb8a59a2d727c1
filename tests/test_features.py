"""Vectorizers, validation splits and data checks against hand-checked expectations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers.params import project_params
from omegaconf import OmegaConf

from pipeline.config import compose
from pipeline.errors import ConfigError, DataError
from pipeline.features import (
    CheckFailed,
    Transform,
    check_splits,
    multi_hot,
    validation_indices,
)
from pipeline.formats import Sequences

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)


def dataset(name: str):
    return compose(project_params()).datasets[name]


def test_multi_hot_by_hand():
    x = multi_hot(Sequences.from_lists([[1, 3, 3], [0], [], [4, 1]]), num_words=5)
    assert sp.isspmatrix_csr(x) and x.dtype == np.float32
    expected = np.array([[0, 1, 0, 1, 0],
                         [1, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 1, 0, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(x.toarray(), expected)  # repeats give 1, not counts


def test_multi_hot_matches_the_books_dense_loop():
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 100, size=rng.integers(0, 30)).tolist() for _ in range(50)]
    dense = np.zeros((len(rows), 100))
    for i, seq in enumerate(rows):  # the books' vectorize_sequences
        for j in seq:
            dense[i, j] = 1.0
    np.testing.assert_array_equal(multi_hot(Sequences.from_lists(rows), 100).toarray(), dense)


def test_multi_hot_rejects_indices_outside_the_vocabulary():
    with pytest.raises(DataError, match="num_words"):
        multi_hot(Sequences.from_lists([[7]]), num_words=5)


def split_cfg(validation, shuffle):
    return OmegaConf.create({"validation": validation, "shuffle": shuffle})


def test_validation_first_rows_like_the_books():
    train, val = validation_indices(100, split_cfg(10, False), seed=42, dataset="imdb")
    np.testing.assert_array_equal(val, np.arange(10))  # x_val = x_train[:10]
    np.testing.assert_array_equal(train, np.arange(10, 100))


def test_validation_fraction_matches_train_test_split():
    from sklearn.model_selection import train_test_split

    train, val = validation_indices(1000, split_cfg(0.2, True), seed=42, dataset="fashion")
    expected_train, expected_val = train_test_split(np.arange(1000), test_size=0.2,
                                                    random_state=42)
    np.testing.assert_array_equal(train, expected_train)
    np.testing.assert_array_equal(val, expected_val)
    assert len(set(train) | set(val)) == 1000 and not set(train) & set(val)


def test_validation_zero_and_too_large():
    train, val = validation_indices(50, split_cfg(0, False), seed=1, dataset="boston")
    assert len(val) == 0 and len(train) == 50
    with pytest.raises(ConfigError, match=r"datasets\.boston\.split\.validation"):
        validation_indices(50, split_cfg(50, False), seed=1, dataset="boston")


def test_standardize_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train = rng.normal(5, 2, size=(200, 3))
    other = rng.normal(50, 20, size=(100, 3))
    transform = Transform("standardize").fit(train)
    np.testing.assert_allclose(transform.apply(train).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(transform.apply(train).std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(transform.fitted["mean"], train.mean(axis=0))
    np.testing.assert_allclose(transform.apply(other),
                               (other - train.mean(axis=0)) / train.std(axis=0), rtol=1e-5)


def test_images_scale_to_unit_float32_and_keep_shape():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = Transform("images").fit(x).apply(x)
    assert out.dtype == np.float32 and out.shape == (1, 2, 2)
    np.testing.assert_allclose(out, [[[0, 1], [0.2, 0.4]]], rtol=1e-6)


def good_splits(rng, n_features=4):
    def part(n):
        return rng.normal(size=(n, n_features)).astype(np.float32), rng.integers(0, 10, n)
    return {"train": part(40), "val": part(10), "test": part(10)}


def test_checks_pass_on_clean_data():
    result = check_splits("mnist", dataset("mnist"), good_splits(np.random.default_rng(0)))
    assert result["overlap"]["test"]["rows"] == 0


def test_nan_fails_the_finite_check():
    splits = good_splits(np.random.default_rng(0))
    splits["val"][0][3, 1] = np.nan
    with pytest.raises(CheckFailed, match=r"mnist: data check 'finite'.*val x"):
        check_splits("mnist", dataset("mnist"), splits)


def test_label_out_of_range_fails():
    splits = good_splits(np.random.default_rng(0))
    splits["test"][1][0] = 10
    with pytest.raises(CheckFailed, match=r"check 'labels'.*\[10\]"):
        check_splits("mnist", dataset("mnist"), splits)


def test_shape_mismatch_fails():
    rng = np.random.default_rng(0)
    splits = good_splits(rng)
    splits["test"] = (rng.normal(size=(10, 5)).astype(np.float32), splits["test"][1])
    with pytest.raises(CheckFailed, match="check 'shapes'"):
        check_splits("mnist", dataset("mnist"), splits)
    splits = good_splits(rng)
    splits["train"] = (splits["train"][0], splits["train"][1][:-1])
    with pytest.raises(CheckFailed, match="check 'shapes'"):
        check_splits("mnist", dataset("mnist"), splits)


def test_leakage_above_tolerance_fails_and_names_the_dataset():
    splits = good_splits(np.random.default_rng(0))
    x_test, _y_test = splits["test"]
    x_test[:3] = splits["train"][0][:3]  # 3 of 10 test rows copied from train
    with pytest.raises(CheckFailed, match=r"imdb: data check 'leakage'.*3 of 10 test"):
        check_splits("imdb", dataset("mnist"), splits)


def test_leakage_within_tolerance_is_reported():
    splits = good_splits(np.random.default_rng(0))
    splits["test"][0][:1] = splits["val"][0][:1]
    ds = dataset("mnist")
    ds.checks.max_overlap = 0.2
    result = check_splits("mnist", ds, splits)
    assert result["overlap"]["test"] == {"rows": 1, "fraction": 0.1}


def test_leakage_is_found_in_sparse_rows():
    x = multi_hot(Sequences.from_lists([[1, 2], [3], [4, 5], [1, 2]]), 10)
    y = np.array([0, 1, 0, 1])
    splits = {"train": (x[:3], y[:3]), "val": (x[:0], y[:0]), "test": (x[3:], y[3:])}
    with pytest.raises(CheckFailed, match="check 'leakage'"):
        check_splits("imdb", dataset("imdb"), splits)
