"""A memory cache that the passes fill as they read: the first batch comes seconds after
the listing, whatever the number of files, and the first pass runs at the decoder's rate.

Each image has a state: unread, cached or unreadable. A batch whose images are all read
is one gather from the cache; a batch with unread images decodes those (in parallel, the
decoder's failures caught), stores them, and then gathers: the first pass reads every
file once, as it goes, and the passes after it read none. A batch's images are the same
bits as a cache filled before the passes (the same decode), so the order, the seeds and
the augmentation do not change.

Before the passes, the caller screens what must never reach a reader (`prepare`): a FIFO
would block it, and a stat says so. What the header screen finds (`headers`) is found
here in the graph when the caller did not screen the headers: a file that is not a PNG,
JPEG, GIF or BMP within PIL's pixel limit is never decoded. A file that fails is named
once, on standard error, when a pass first meets it, and is unreadable for every pass
after: its rows come back blank and not readable, for the face to leave out (the
drop-in) or to weigh zero (the trainer). No Python runs in the passes: a Python function
in a tf.data pipeline can hang the interpreter's exit.

The cache is two variables captured by the passes' datasets, read and written with
gathers and scatters only (a whole read of a variable that sparse ops touch copies it).
A dataset that captures a variable cannot be serialised for the tf.data service, and a
variable made in a distribution strategy's scope would be the strategy's: the caller
fills a cache before the passes for those (`prepare`).
"""

import os
import sys
from typing import Callable, Sequence

import tensorflow as tf

UNREAD, CACHED, UNREADABLE = 0, 1, 2
_NOT_AN_IMAGE = "not a PNG, JPEG, GIF or BMP within PIL's pixel limit: left out of its batch"
_FAILED = "it could not be read, or its image data is corrupt: left out of its batch"


class Filling:
    """The memory cache of `paths`, filled by the passes that read them.

    Args:
      paths: the files, one row each.
      pixel_shape: one decoded image's shape.
      read: a graph function: a file's bytes (string scalar) -> (whether it is an image
        this reader decodes, its uint8 pixels: zeros if not), failing for bytes it
        cannot decode (`prepare.load_checked`, or a decode alone when the caller
        screened the headers).
      parallel_calls: images of a batch decoded at once (0 or less: one per core).
    """

    def __init__(
        self,
        paths: Sequence[str],
        pixel_shape: Sequence[int],
        read: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
        *,
        parallel_calls: int,
    ):
        self._paths = tf.constant([os.fsencode(p) for p in paths], tf.string, [len(paths)])
        self._read_bytes = read
        self._parallel = parallel_calls if parallel_calls > 0 else os.cpu_count() or 1
        shape = [len(paths), *pixel_shape]
        with tf.init_scope():
            # Uninitialised: a row is gathered only once it is cached, and no memset of
            # the whole cache delays the first batch (0.25 s at 32,000 images of 96x96).
            self.images = tf.Variable(
                lambda: tf.raw_ops.Empty(shape=shape, dtype=tf.uint8, init=False),
                trainable=False,
                name="image_cache",
            )
            self.state = tf.Variable(tf.zeros([len(paths)], tf.int32), trainable=False)
        self._pixels = tf.function(
            self._gather_or_fill,
            input_signature=[tf.TensorSpec([None], tf.int64)],
            autograph=False,
        )

    def pixels(self, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """A graph function: rows (int64 vector) -> (their uint8 pixels, readable), reading
        and caching the rows not read yet; an unreadable row's pixels are zeros. Traced
        once: the flow's passes and its `next()` call the same function."""
        return self._pixels(rows)

    def _gather_or_fill(self, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        unread = tf.equal(tf.gather(self.state, rows), UNREAD)
        filled = tf.cond(
            tf.reduce_any(unread),
            lambda: self._fill(tf.boolean_mask(rows, unread)),
            lambda: tf.no_op(),
        )
        with tf.control_dependencies([filled]):
            readable = tf.equal(tf.gather(self.state, rows), CACHED)
            return tf.gather(self.images, rows), readable

    def _fill(self, rows: tf.Tensor) -> tf.Operation:
        """Reads `rows` (unread ones) into the cache, each then cached or unreadable (and
        named)."""
        read, is_image, images = self._decode(rows)
        decoded = tf.boolean_mask(read, is_image)
        cached = _member(rows, decoded)
        # Slices copied whole (scatter_nd_update took 10x as long), and zeros for the
        # files that cannot be read, so that a gather needs no select.
        stored = self.images.scatter_update(
            tf.IndexedSlices(tf.boolean_mask(images, is_image), decoded)
        )
        blanked = self._blank(tf.boolean_mask(rows, ~cached))
        with tf.control_dependencies([stored, blanked]):
            states = tf.where(cached, CACHED, UNREADABLE)
            marked = self.state.scatter_update(tf.IndexedSlices(states, rows))
        failed = tf.boolean_mask(rows, ~_member(rows, read))
        not_images = tf.boolean_mask(read, ~is_image)
        return tf.group(marked, self._name(failed, _FAILED), self._name(not_images, _NOT_AN_IMAGE))

    def _blank(self, rows: tf.Tensor) -> tf.Operation:
        """Zeros into the cache's `rows` (the files that cannot be read), if any."""

        def blank() -> tf.Operation:
            zeros = tf.zeros(tf.concat([tf.shape(rows), self.images.shape[1:]], 0), tf.uint8)
            return self.images.scatter_update(tf.IndexedSlices(zeros, rows)).op

        return tf.cond(tf.size(rows) > 0, blank, tf.no_op)

    def _decode(self, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(the rows read, whether each is an image, their pixels), decoded in parallel;
        the files that fail are left out (tf.data's `ignore_errors` is the one way a
        graph outlives them)."""
        paths = tf.gather(self._paths, rows)
        read = tf.data.Dataset.from_tensor_slices((rows, paths)).map(
            lambda row, path: (row, *self._read_bytes(tf.io.read_file(path))),
            num_parallel_calls=self._parallel,
            deterministic=True,
        )
        none = tf.data.Dataset.from_tensors(
            (
                tf.zeros([0], tf.int64),
                tf.zeros([0], tf.bool),
                tf.zeros([0, *self.images.shape[1:]], tf.uint8),
            )
        )
        everything = read.ignore_errors().batch(2**31 - 1).concatenate(none).take(1)
        return everything.get_single_element()

    def _name(self, rows: tf.Tensor, reason: str) -> tf.Operation:
        """Names each file of `rows` with `reason`, one line each on standard error."""

        def say() -> tf.Operation:
            lines = tf.strings.join(
                ["rps_tfdata: unreadable image ", tf.gather(self._paths, rows), f": {reason}"]
            )
            return tf.print(tf.strings.reduce_join(lines, separator="\n"), output_stream=sys.stderr)

        return tf.cond(tf.size(rows) > 0, say, tf.no_op)


def _member(values: tf.Tensor, members: tf.Tensor) -> tf.Tensor:
    """Whether each of `values` is one of `members` (int64 vectors)."""
    return tf.reduce_any(tf.equal(values[:, None], members[None, :]), axis=1)
