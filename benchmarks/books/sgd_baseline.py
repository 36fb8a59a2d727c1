"""The linear baseline of 혼자 공부하는 머신러닝+딥러닝 ch. 7-1 (SGDClassifier, log loss,
cross_validate), applied to any dataset: python sgd_baseline.py <dataset>.

Features the books' way: images / 255 flattened, word lists through the dense
float64 `vectorize_sequences`, Boston standardized with train mean/std (SGDRegressor).
Split, seed and estimator options from params.yaml (baseline:), as the pipeline.
"""

import sys
import warnings

import numpy as np
from common import PARAMS, SEED, load_data, report, validation
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.model_selection import cross_validate, train_test_split

dataset = sys.argv[1]
ds = PARAMS["datasets"][dataset]
cfg = PARAMS["baseline"]
regression = ds["task"] == "regression"
warnings.filterwarnings("ignore", category=ConvergenceWarning)  # max_iter=5 warns; as the pipeline

(train_input, train_target), (test_input, test_target) = load_data(dataset)


def vectorize_sequences(sequences, dimension):
    results = np.zeros((len(sequences), dimension))
    for i, sequence in enumerate(sequences):
        results[i, sequence] = 1.
    return results


if ds["preprocess"]["kind"] == "images":
    train_scaled = train_input.reshape(len(train_input), -1) / 255.0
    test_scaled = test_input.reshape(len(test_input), -1) / 255.0
elif ds["preprocess"]["kind"] == "multi_hot":
    train_scaled = vectorize_sequences(train_input, ds["load"]["num_words"])
    test_scaled = vectorize_sequences(test_input, ds["load"]["num_words"])
else:
    mean, std = train_input.mean(axis=0), train_input.std(axis=0)
    train_scaled = (train_input - mean) / std
    test_scaled = (test_input - mean) / std

split = validation(dataset)
if split["validation"] and split["shuffle"]:
    train_scaled, _, train_target, _ = train_test_split(
        train_scaled, train_target, test_size=split["validation"], random_state=SEED)
elif split["validation"]:
    n_val = split["validation"]
    train_scaled, train_target = train_scaled[n_val:], train_target[n_val:]

if regression:
    sc = SGDRegressor(**cfg["regressor"], random_state=SEED)
    scores = cross_validate(sc, train_scaled, train_target, cv=cfg["cv_folds"],
                            n_jobs=cfg["n_jobs"], scoring="neg_mean_absolute_error")
    sc.fit(train_scaled, train_target)
    report(test_mae=np.mean(np.abs(sc.predict(test_scaled) - test_target)),
           cv_mae=-np.mean(scores["test_score"]))
else:
    sc = SGDClassifier(**cfg["classifier"], random_state=SEED)
    scores = cross_validate(sc, train_scaled, train_target, cv=cfg["cv_folds"],
                            n_jobs=cfg["n_jobs"])
    sc.fit(train_scaled, train_target)
    report(test_accuracy=sc.score(test_scaled, test_target),
           cv_accuracy=np.mean(scores["test_score"]))
