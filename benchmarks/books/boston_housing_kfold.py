"""Boston housing, Deep Learning with Python ch. 3: 64 -> 64 -> 1, K-fold validation,
then the final model on all training data, scored on the test split.

The book's listing; folds, epochs, batch size and seed from params.yaml
(models.boston_housing_book, the book's recipe as a pipeline model: the reference for
the pipeline's default boston_housing_dense, whatever recipe that one uses; the book's
folds use batch_size=1, the pipeline's the model's batch size, so this does too).
"""

import keras
import numpy as np
from common import SEED, load_data, model_params, report
from keras import layers

p = model_params("boston_housing_book")
keras.utils.set_random_seed(SEED)

(train_data, train_targets), (test_data, test_targets) = load_data("boston_housing")
mean = train_data.mean(axis=0)
train_data -= mean
std = train_data.std(axis=0)
train_data /= std
test_data -= mean
test_data /= std


def build_model():
    model = keras.Sequential([
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.RMSprop(p["optimizer"]["learning_rate"]),
                  loss="mse", metrics=["mae"])
    return model


k = p["kfold"]["folds"]
num_val_samples = len(train_data) // k
num_epochs = p["kfold"]["epochs"]
all_scores = []
for i in range(k):
    val_data = train_data[i * num_val_samples: (i + 1) * num_val_samples]
    val_targets = train_targets[i * num_val_samples: (i + 1) * num_val_samples]
    partial_train_data = np.concatenate(
        [train_data[:i * num_val_samples], train_data[(i + 1) * num_val_samples:]], axis=0)
    partial_train_targets = np.concatenate(
        [train_targets[:i * num_val_samples], train_targets[(i + 1) * num_val_samples:]], axis=0)
    model = build_model()
    model.fit(partial_train_data, partial_train_targets, epochs=num_epochs,
              batch_size=p["batch_size"], verbose=0)
    val_mse, val_mae = model.evaluate(val_data, val_targets, verbose=0)
    all_scores.append(val_mae)

model = build_model()
history = model.fit(train_data, train_targets, epochs=p["epochs"],
                    batch_size=p["batch_size"], verbose=0)
test_mse_score, test_mae_score = model.evaluate(test_data, test_targets, verbose=0)
report(test_mae=test_mae_score, kfold_val_mae_mean=np.mean(all_scores),
       epochs=len(history.history["loss"]))
