"""IMDB, Deep Learning with Python ch. 3: multi-hot reviews -> Dense(16) -> Dense(16) -> 1.

The book's listing, including its `vectorize_sequences` into a dense float64
np.zeros matrix (2 GB per 25,000-review split); x_val = the first rows of train.
Hyperparameters and seed from params.yaml (models.imdb_dense).
"""

import keras
import numpy as np
from common import PARAMS, SEED, load_data, model_params, report, validation
from keras import layers

p = model_params("imdb_dense")
keras.utils.set_random_seed(SEED)
num_words = PARAMS["datasets"]["imdb"]["load"]["num_words"]

(train_data, train_labels), (test_data, test_labels) = load_data("imdb")


def vectorize_sequences(sequences, dimension=num_words):
    results = np.zeros((len(sequences), dimension))
    for i, sequence in enumerate(sequences):
        results[i, sequence] = 1.
    return results


x_train = vectorize_sequences(train_data)
x_test = vectorize_sequences(test_data)
y_train = np.asarray(train_labels).astype("float32")
y_test = np.asarray(test_labels).astype("float32")

n_val = validation("imdb")["validation"]
x_val = x_train[:n_val]
partial_x_train = x_train[n_val:]
y_val = y_train[:n_val]
partial_y_train = y_train[n_val:]

model = keras.Sequential([
    layers.Dense(16, activation="relu"),
    layers.Dense(16, activation="relu"),
    layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.RMSprop(p["optimizer"]["learning_rate"]),
              loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(partial_x_train, partial_y_train, epochs=p["epochs"],
                    batch_size=p["batch_size"], validation_data=(x_val, y_val), verbose=0,
                    callbacks=[keras.callbacks.EarlyStopping(
                        patience=p["early_stopping"]["patience"], restore_best_weights=True)])

results = model.evaluate(x_test, y_test, verbose=0)
report(test_accuracy=results[1], epochs=len(history.history["loss"]))
