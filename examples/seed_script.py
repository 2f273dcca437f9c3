"""The seed note's script (TensorFlow certificate, category 3), migrated to rps_tfdata.

Two lines differ from the note: the import of ImageDataGenerator, and the checkpoint's
name (Keras 3 saves weights only to a name ending in `.weights.h5`). Everything else is
the note's code, so its results carry over and its epochs run many times faster.

    python examples/seed_script.py                      # the note's job: rps.zip, 25 epochs
    python examples/seed_script.py DATA_DIR EPOCHS SIZE  # another folder, epochs, image size
"""

import sys
import urllib.request
import zipfile

from tensorflow.keras.callbacks import ModelCheckpoint
from tensorflow.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tensorflow.keras.models import Sequential

from rps_tfdata.image import ImageDataGenerator  # was: tensorflow.keras.preprocessing.image

# Step 2. Preprocessing
if len(sys.argv) > 1:
    TRAINING_DIR = sys.argv[1]
else:
    url = "https://storage.googleapis.com/download.tensorflow.org/data/rps.zip"
    urllib.request.urlretrieve(url, "rps.zip")
    with zipfile.ZipFile("rps.zip", "r") as zip_ref:
        zip_ref.extractall("tmp/")
    TRAINING_DIR = "tmp/rps/"
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 25
SIZE = int(sys.argv[3]) if len(sys.argv) > 3 else 150

training_datagen = ImageDataGenerator(
    rescale=1.0 / 255,
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
    validation_split=0.2,
)
training_generator = training_datagen.flow_from_directory(
    TRAINING_DIR,
    batch_size=32,
    target_size=(SIZE, SIZE),
    class_mode="categorical",
    subset="training",
)
validation_generator = training_datagen.flow_from_directory(
    TRAINING_DIR,
    batch_size=32,
    target_size=(SIZE, SIZE),
    class_mode="categorical",
    subset="validation",
)

# Step 3. Modeling
model = Sequential(
    [
        Conv2D(64, (3, 3), activation="relu", input_shape=(SIZE, SIZE, 3)),
        MaxPooling2D(2, 2),
        Conv2D(64, (3, 3), activation="relu"),
        MaxPooling2D(2, 2),
        Conv2D(128, (3, 3), activation="relu"),
        MaxPooling2D(2, 2),
        Conv2D(128, (3, 3), activation="relu"),
        MaxPooling2D(2, 2),
        Flatten(),
        Dropout(0.5),
        Dense(512, activation="relu"),
        Dense(3, activation="softmax"),
    ]
)

# Step 4. Compile
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["acc"])

# Step 4.5. ModelCheckpoint
checkpoint_path = "my_checkpoint.weights.h5"  # was "my_checkpoint.ckpt": Keras 3 refuses it
checkpoint = ModelCheckpoint(
    filepath=checkpoint_path,
    save_weights_only=True,
    save_best_only=True,
    monitor="val_loss",
    verbose=1,
)

# Step 5. Fit
history = model.fit(
    training_generator,
    validation_data=(validation_generator),
    epochs=EPOCHS,
    callbacks=[checkpoint],
)

# Step 5.5. Ckpt Load Weight
model.load_weights(checkpoint_path)
print("best val_loss", min(history.history["val_loss"]))
