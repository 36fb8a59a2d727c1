"""Reuters, Deep Learning with Python ch. 3: multi-hot newswires -> 64 -> 64 -> 46 topics.

The book's listing with its dense float64 `vectorize_sequences`, integer labels and
sparse_categorical_crossentropy (the book's second way to handle the labels);
x_val = the first rows of train. Hyperparameters and seed from params.yaml.
"""

import keras
import numpy as np
from common import PARAMS, SEED, load_data, model_params, report, validation
from keras import layers

p = model_params("reuters_dense")
keras.utils.set_random_seed(SEED)
num_words = PARAMS["datasets"]["reuters"]["load"]["num_words"]

(train_data, train_labels), (test_data, test_labels) = load_data("reuters")


def vectorize_sequences(sequences, dimension=num_words):
    results = np.zeros((len(sequences), dimension))
    for i, sequence in enumerate(sequences):
        results[i, sequence] = 1.
    return results


x_train = vectorize_sequences(train_data)
x_test = vectorize_sequences(test_data)
y_train = np.array(train_labels)
y_test = np.array(test_labels)

n_val = validation("reuters")["validation"]
x_val = x_train[:n_val]
partial_x_train = x_train[n_val:]
y_val = y_train[:n_val]
partial_y_train = y_train[n_val:]

model = keras.Sequential([
    layers.Dense(64, activation="relu"),
    layers.Dense(64, activation="relu"),
    layers.Dense(46, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.RMSprop(p["optimizer"]["learning_rate"]),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(partial_x_train, partial_y_train, epochs=p["epochs"],
                    batch_size=p["batch_size"], validation_data=(x_val, y_val), verbose=0,
                    callbacks=[keras.callbacks.EarlyStopping(
                        patience=p["early_stopping"]["patience"], restore_best_weights=True)])

results = model.evaluate(x_test, y_test, verbose=0)
report(test_accuracy=results[1], epochs=len(history.history["loss"]))
