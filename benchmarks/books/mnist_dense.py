"""MNIST, Deep Learning with Python ch. 2: Dense(512, relu) -> Dense(10, softmax).

The book's listing as a straight script; split, seed, epochs, batch size and early
stopping from params.yaml (models.mnist_dense), so it compares with the pipeline.
"""

import keras
from common import SEED, load_data, model_params, report, validation
from keras import layers
from sklearn.model_selection import train_test_split

p = model_params("mnist_dense")
keras.utils.set_random_seed(SEED)

(train_images, train_labels), (test_images, test_labels) = load_data("mnist")
train_images = train_images.reshape((len(train_images), 28 * 28)).astype("float32") / 255
test_images = test_images.reshape((len(test_images), 28 * 28)).astype("float32") / 255
train_images, val_images, train_labels, val_labels = train_test_split(
    train_images, train_labels, test_size=validation("mnist")["validation"], random_state=SEED)

network = keras.Sequential([
    layers.Dense(512, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
network.compile(optimizer=keras.optimizers.RMSprop(p["optimizer"]["learning_rate"]),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = network.fit(train_images, train_labels, epochs=p["epochs"],
                      batch_size=p["batch_size"], validation_data=(val_images, val_labels),
                      verbose=0, callbacks=[keras.callbacks.EarlyStopping(
                          patience=p["early_stopping"]["patience"], restore_best_weights=True)])

test_loss, test_acc = network.evaluate(test_images, test_labels, verbose=0)
report(test_accuracy=test_acc, epochs=len(history.history["loss"]))
