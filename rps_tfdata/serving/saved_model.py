"""A SavedModel that takes encoded images: the trained CNN with training's preprocessing
in its graph, loadable by TensorFlow Serving or `tf.saved_model.load`, without this
package.

Signature `serving_default`:
  input   `images`: tf.string [N], encoded PNG, JPEG, BMP or GIF (first frame), any size,
          grey, RGB, RGBA or 16-bit, decoded and resized exactly as training read them
          (`rps_tfdata.pipeline.reading.decode`), then rescaled to [0, 1];
  outputs `probabilities` float32 [N, classes] in the order of `class_names.json`;
          `classes` tf.string [N], the most probable class name;
          `valid` bool [N]: False for an element that is not an image of those formats
          (empty, text, TIFF, ...) or whose headers promise more pixels than
          `decode.decoded_pixels` allows (a decompression bomb): it is never decoded, its
          probabilities are 0 and its class "". An element whose signature is right but
          whose data is corrupt fails the whole call with the decoder's error (it cannot
          be told from its headers).
Signature `images_uint8`, for clients that decode and resize themselves:
  input   `pixels`: uint8 [N, H, W, 3] RGB at the training size (`preprocessing.json`);
  outputs `probabilities` and `classes` as above.
With tensorflow-serving-api installed (the `serving` extra), `assets.extra/` holds TF
Serving's warmup request (`write_warmup`).
The loaded object's `class_names[0]` (a string variable) names the classes in that order.
"""

import os

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata.infra import atomic, fs
from rps_tfdata.pipeline.reading import decode
from rps_tfdata.serving.finished import Run

EXPORT_FOLDER = "export"  # in a run's folder: the SavedModel's versions (TF Serving's layout)
EXPORT_VERSION = "1"  # TF Serving reads MODEL/<version>/saved_model.pb


def default_dir(model_dir: str) -> str:
    """MODEL_DIR/export/1, the layout TF Serving expects."""
    return os.path.join(model_dir, EXPORT_FOLDER, EXPORT_VERSION)


def make_serving_fn(
    model: keras.Model, class_names: list[str], image_size: tuple[int, int], resize_method: str
):
    """The signature's function: encoded images in, probabilities, classes, valid out."""
    names = tf.constant(list(class_names))
    height, width = image_size

    def read(element: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        contents, valid = element

        def decoded():
            image = decode.resize(decode.decode_image(contents), image_size, resize_method)
            return decode.rescale(image)

        blank = lambda: tf.zeros((height, width, 3), tf.float32)  # noqa: E731
        return tf.cond(valid, decoded, blank)

    def serve(encoded: tf.Tensor) -> dict[str, tf.Tensor]:
        valid = tf.map_fn(decode.can_decode, encoded, fn_output_signature=tf.bool)
        pixels = tf.map_fn(
            read,
            (encoded, valid),
            fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32),
        )
        probabilities = tf.cast(model(pixels, training=False), tf.float32)
        probabilities = probabilities * tf.cast(valid, tf.float32)[:, None]
        best = tf.gather(names, tf.argmax(probabilities, axis=1))
        return {
            "probabilities": probabilities,
            "classes": tf.where(valid, best, tf.constant("")),
            "valid": valid,
        }

    return serve


def make_pixels_fn(model: keras.Model, class_names: list[str]):
    """The `images_uint8` signature's function: decoded pixels at the training size in,
    probabilities and classes out (for clients that decode and resize themselves)."""
    names = tf.constant(list(class_names))

    def classify(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        images = decode.rescale(tf.cast(pixels, tf.float32))
        probabilities = tf.cast(model(images, training=False), tf.float32)
        return {
            "probabilities": probabilities,
            "classes": tf.gather(names, tf.argmax(probabilities, axis=1)),
        }

    return classify


def write(run: Run, out: str) -> str:
    """Writes the SavedModel of a finished run, staged, then renamed over an earlier
    export, so that a reader never sees half of one.

    Args:
      run: the finished run: its model, class names and image settings.
      out: the SavedModel's folder (a path or a bucket URL).

    Returns:
      `out`, holding the `serving_default` (encoded files) and `images_uint8` (decoded
      pixels) signatures and TF Serving's warmup request.
    """
    options = run.options
    serve = make_serving_fn(run.model, run.class_names, options.image_size, options.resize_method)
    archive = keras.export.ExportArchive()
    archive.track(run.model)
    # The class names in probability order, for clients that rank more than the first.
    archive.add_variable_collection("class_names", [tf.Variable(list(run.class_names))])
    archive.add_endpoint(
        "serving_default", serve, input_signature=[tf.TensorSpec([None], tf.string, name="images")]
    )
    height, width = options.image_size
    archive.add_endpoint(
        "images_uint8",
        make_pixels_fn(run.model, run.class_names),
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name="pixels")],
    )

    def build(staging: str) -> None:
        archive.write_out(staging, verbose=False)
        write_warmup(staging, options.image_size)

    return atomic.build_folder(out, build, replace=True)


WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def write_warmup(export_dir: str, image_size: tuple[int, int]) -> bool:
    """TF Serving's warmup file (`assets.extra/tf_serving_warmup_requests`): one
    `serving_default` request of one PNG at the training size, replayed when the
    model loads, so that the first client's request is not the one that traces the
    graph. Its `PredictionLog` messages are defined by tensorflow-serving-api (the
    `serving` extra): without it, no file and a log line saying so. Returns whether
    it was written."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError:
        logging.info(
            "no TF Serving warmup file in %s: it needs tensorflow-serving-api "
            "(pip install 'rps_tfdata[serving]')",
            export_dir,
        )
        return False
    png = tf.io.encode_png(tf.zeros((*image_size, 3), tf.uint8)).numpy()
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([png], dtype=tf.string))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    path = os.path.join(export_dir, WARMUP_FILE)
    fs.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())
    return True
