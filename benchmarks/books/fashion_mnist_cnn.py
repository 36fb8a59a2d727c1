"""Fashion-MNIST, 혼자 공부하는 머신러닝+딥러닝 ch. 8-2: two Conv2D/MaxPooling2D blocks ->
Dense(100) -> Dropout(0.4) -> Dense(10), adam, checkpoint + early stopping.

The book's code as a straight script; split, seed and hyperparameters from params.yaml.
"""

import keras
from common import SEED, load_data, model_params, report, validation
from sklearn.model_selection import train_test_split

p = model_params("fashion_mnist_cnn")
keras.utils.set_random_seed(SEED)

(train_input, train_target), (test_input, test_target) = load_data("fashion_mnist")
train_scaled = train_input.reshape(-1, 28, 28, 1) / 255.0
test_scaled = test_input.reshape(-1, 28, 28, 1) / 255.0
train_scaled, val_scaled, train_target, val_target = train_test_split(
    train_scaled, train_target, test_size=validation("fashion_mnist")["validation"],
    random_state=SEED)

model = keras.Sequential()
model.add(keras.layers.Input(shape=(28, 28, 1)))
model.add(keras.layers.Conv2D(32, kernel_size=3, activation="relu", padding="same"))
model.add(keras.layers.MaxPooling2D(2))
model.add(keras.layers.Conv2D(64, kernel_size=3, activation="relu", padding="same"))
model.add(keras.layers.MaxPooling2D(2))
model.add(keras.layers.Flatten())
model.add(keras.layers.Dense(100, activation="relu"))
model.add(keras.layers.Dropout(0.4))
model.add(keras.layers.Dense(10, activation="softmax"))
model.compile(optimizer=keras.optimizers.Adam(p["optimizer"]["learning_rate"]),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
checkpoint_cb = keras.callbacks.ModelCheckpoint("best-cnn-model.keras", save_best_only=True)
early_stopping_cb = keras.callbacks.EarlyStopping(patience=p["early_stopping"]["patience"],
                                                  restore_best_weights=True)
history = model.fit(train_scaled, train_target, epochs=p["epochs"], batch_size=p["batch_size"],
                    verbose=0, validation_data=(val_scaled, val_target),
                    callbacks=[checkpoint_cb, early_stopping_cb])

test_loss, test_acc = model.evaluate(test_scaled, test_target, verbose=0)
report(test_accuracy=test_acc, epochs=len(history.history["loss"]))
