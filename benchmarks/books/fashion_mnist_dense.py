"""Fashion-MNIST, 혼자 공부하는 머신러닝+딥러닝 ch. 7-3: Flatten -> Dense(100) -> Dropout(0.3)
-> Dense(10), adam, checkpoint + early stopping (patience 2, best weights restored).

The book's code as a straight script (train_test_split(test_size=0.2,
random_state=42) with the default params); hyperparameters from params.yaml.
"""

import keras
from common import SEED, load_data, model_params, report, validation
from sklearn.model_selection import train_test_split

p = model_params("fashion_mnist_dense")
keras.utils.set_random_seed(SEED)

(train_input, train_target), (test_input, test_target) = load_data("fashion_mnist")
train_scaled = train_input / 255.0
test_scaled = test_input / 255.0
train_scaled, val_scaled, train_target, val_target = train_test_split(
    train_scaled, train_target, test_size=validation("fashion_mnist")["validation"],
    random_state=SEED)

model = keras.Sequential([
    keras.layers.Input(shape=(28, 28)),
    keras.layers.Flatten(),
    keras.layers.Dense(100, activation="relu"),
    keras.layers.Dropout(0.3),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(p["optimizer"]["learning_rate"]),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
checkpoint_cb = keras.callbacks.ModelCheckpoint("best-model.keras", save_best_only=True)
early_stopping_cb = keras.callbacks.EarlyStopping(patience=p["early_stopping"]["patience"],
                                                  restore_best_weights=True)
history = model.fit(train_scaled, train_target, epochs=p["epochs"], batch_size=p["batch_size"],
                    verbose=0, validation_data=(val_scaled, val_target),
                    callbacks=[checkpoint_cb, early_stopping_cb])

test_loss, test_acc = model.evaluate(test_scaled, test_target, verbose=0)
report(test_accuracy=test_acc, epochs=len(history.history["loss"]))
