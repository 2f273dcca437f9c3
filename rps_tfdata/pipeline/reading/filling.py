"""A memory cache that the passes fill as they read: the first batch comes seconds after
the listing, whatever the number of files, and the first pass runs at the decoder's rate.

Each image has a state: unread, cached or unreadable. A pass that starts with every
image read is a gather from the cache per batch. A pass that starts with images unread
streams, image by image in parallel, as a read before the passes would: an unread image
is read, decoded, stored and marked; a read one is gathered. So the first pass reads
every file once, as it goes, and the passes after it read none; a pass cut short leaves
the next one to read the rest. The images are the bits a cache filled before the passes
holds (the same decode), so the order, the seeds and the augmentation do not change.

Before the passes, the caller screens what must never reach a reader (`prepare`): a FIFO
would block it, and a stat says so. The header screen (`headers`) runs here in the graph
when the caller did not screen the headers: a file that is not a PNG, JPEG, GIF or BMP
within PIL's pixel limit is never decoded. A file that fails is named once, on standard
error, when a pass first meets it, and is unreadable for every pass after: its rows come
back blank (zeros) and not readable, for the face to leave out (the drop-in) or to weigh
zero (the trainer). Any error reading a file counts (tf.data's `ignore_errors` does
not tell a corrupt file from a transient read error): its row stays unreadable for the
cache's life. No Python runs in the passes: a Python function in a tf.data pipeline can
hang the interpreter's exit.

The cache is two variables captured by the passes' datasets, read and written with
gathers and scatters only (a whole read of a variable that sparse ops touch copies it).
A dataset that captures a variable cannot be serialised for the tf.data service (which
refuses a memory cache anyway), and a variable made in a distribution strategy's scope
would be the strategy's: a drop-in flow made in one fills its cache before the passes
(`prepare`). The trainer reads its splits outside the strategy's scope, so its cache is
filled by the passes under every strategy.
"""

import os
import sys
from typing import Callable, Sequence

import tensorflow as tf

UNREAD, CACHED, UNREADABLE = 0, 1, 2
_NOT_AN_IMAGE = (
    "not a PNG, JPEG, GIF or BMP within PIL's pixel limit: left out of every pass; convert or "
    "remove it"
)
_FAILED = (
    "it could not be read, or its image data is corrupt: left out of every pass; replace or "
    "remove it"
)

_as_written = tf.autograph.experimental.do_not_convert  # no Python control flow on tensors
RowsOf = Callable[[tf.Tensor], tf.Tensor]  # a pass's turns (int64 vector) -> their rows


class Filling:
    """The memory cache of `paths`, filled by the passes that read them.

    Args:
      paths: the files, one row each.
      pixel_shape: one decoded image's shape.
      read: a graph function: a file's bytes (string scalar) -> (whether it is an image
        this reader decodes, its uint8 pixels: zeros if not), failing for bytes it
        cannot decode (`prepare.load_checked`, or a decode alone when the caller
        screened the headers).
      parallel_calls: images read at once (tf.data's AUTOTUNE is -1).
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
        self._parallel = parallel_calls
        self._shape = tuple(pixel_shape)
        shape = [len(paths), *pixel_shape]
        with tf.init_scope(), tf.device("/CPU:0"):  # where tf.data runs, whatever the GPUs
            # Uninitialised: a row is gathered only once it is stored, and no memset of
            # the whole cache delays the first batch (0.25 s at 32,000 images of 96x96).
            self.images = tf.Variable(
                lambda: tf.raw_ops.Empty(shape=shape, dtype=tf.uint8, init=False),
                trainable=False,
                name="image_cache",
            )
            self.state = tf.Variable(tf.zeros([len(paths)], tf.int32), trainable=False)
        self._full = False  # (a row once read stays read: `is_full` caches True)
        # Traced once for every pass and every `next()` of a flow (the per-image read
        # and the scan's step cost about 0.35 s of tracing each, each time).
        row = tf.TensorSpec([], tf.int64)
        self._stored = tf.function(self._stored_row, input_signature=[row], autograph=False)
        self._after_blanks = tf.function(
            self._blanks_then,
            input_signature=[tf.TensorSpec([None], tf.int64), row],
            autograph=False,
        )

    def is_full(self) -> bool:
        """Whether every image has been read (cached or found unreadable): from then on,
        passes built are gathers alone. Read eagerly, wherever it is called (False
        where nothing runs eagerly: a graph built in TF1's graph mode)."""
        with tf.init_scope():
            if not self._full and tf.executing_eagerly():
                self._full = bool(tf.reduce_all(tf.not_equal(self.state, UNREAD)))
        return self._full

    def batches(
        self, first: tf.Tensor, last: tf.Tensor, rows_of: RowsOf, batch_size: int
    ) -> tf.data.Dataset:
        """(rows, uint8 pixels, readable) batches of a pass's turns `first` to before
        `last` (int64 scalars), read into the cache where they are not yet. Built once
        the cache is full, the pass is its gathers alone: the streamed read's datasets,
        even never run, cost each iterator made (each epoch of `fit`) about a quarter
        of a later epoch."""

        first, last = tf.cast(first, tf.int64), tf.cast(last, tf.int64)
        if self.is_full():
            return self._gathered(first, last, rows_of, batch_size)
        # This pass's images, not the whole cache's: a consumer that always stops
        # early (`steps_per_epoch`) still gets the gathers once its images are read.
        states = tf.cond(
            last > first,  # (`index_shuffle` refuses an empty vector)
            lambda: tf.gather(self.state, rows_of(tf.range(first, last))),
            lambda: tf.zeros([0], tf.int32),
        )
        every_image_read = tf.reduce_all(tf.not_equal(states, UNREAD))
        # The pass is gathered or streamed: one of the two ranges is empty (a plainer
        # graph than a `tf.cond` between two datasets, at the same speed).
        split = tf.where(every_image_read, last, first)
        cached = self._gathered(first, split, rows_of, batch_size)
        streamed_turns = tf.data.Dataset.range(split, last)
        streamed = self._streamed(streamed_turns, split, last, rows_of).batch(batch_size)
        streamed = streamed.map(_as_written(self._rows_gathered), num_parallel_calls=self._parallel)
        return cached.concatenate(streamed)

    def _gathered(
        self, first: tf.Tensor, last: tf.Tensor, rows_of: RowsOf, batch_size: int
    ) -> tf.data.Dataset:
        """The turns `first` to before `last` as batches gathered from the cache."""

        @_as_written
        def gathered(batch_turns: tf.Tensor):
            return self._rows_gathered(rows_of(batch_turns))

        turns = tf.data.Dataset.range(first, last).batch(batch_size)
        return turns.map(gathered, num_parallel_calls=self._parallel)

    def _rows_gathered(self, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(rows, their uint8 pixels, whether each is an image) of stored `rows`."""
        readable = tf.equal(tf.gather(self.state, rows), CACHED)
        return rows, tf.gather(self.images, rows), readable

    def _streamed(
        self, turns: tf.data.Dataset, first: tf.Tensor, last: tf.Tensor, rows_of: RowsOf
    ) -> tf.data.Dataset:
        """The pass's rows one by one, in order, each once its image is stored: read into
        the cache in parallel where unread. An image whose file fails drops out of the
        parallel map (tf.data's `ignore_errors`, the one way a graph outlives a failed
        decode), and the scan after it puts its row back in its place, stored as a
        blank. Only rows flow through the scan: the pixels stay in the cache until
        the batch's gather (carried through it, each image was copied three times more,
        and the read ran at 0.90x the bare decoder instead of 0.94x)."""

        @_as_written
        def one(turn: tf.Tensor):
            return turn, self._stored(rows_of(turn[None])[0])

        @_as_written
        def gaps_filled(expected: tf.Tensor, element):
            turn, row = element
            failed = tf.cond(  # (`index_shuffle` refuses an empty vector)
                turn > expected,
                lambda: rows_of(tf.range(expected, turn)),
                lambda: tf.zeros([0], tf.int64),
            )
            return turn + 1, self._after_blanks(failed, row)

        rows = turns.map(one, num_parallel_calls=self._parallel, deterministic=True)
        end = tf.data.Dataset.from_tensors((last, tf.constant(-1, tf.int64)))
        return rows.ignore_errors().concatenate(end).scan(first, gaps_filled).unbatch()

    def _stored_row(self, row: tf.Tensor) -> tf.Tensor:
        """`row`, once its image is in the cache: read into it if unread."""
        return tf.cond(
            tf.equal(tf.gather(self.state, row), UNREAD),
            lambda: self._read(row),
            lambda: tf.identity(row),
        )

    def _read(self, row: tf.Tensor) -> tf.Tensor:
        """Reads `row`'s file into the cache (zeros and unreadable if it is not an image);
        `row` once stored and marked. Fails when the file cannot be read or decoded."""
        path = tf.gather(self._paths, row)
        is_image, pixels = self._read_bytes(tf.io.read_file(path))
        stored = self.images.scatter_update(tf.IndexedSlices(pixels[None], row[None]))
        with tf.control_dependencies([stored]):
            state = tf.where(is_image, CACHED, UNREADABLE)
            marked = self.state.scatter_update(tf.IndexedSlices(state[None], row[None]))
        named = tf.cond(is_image, tf.no_op, lambda: self._name(row[None], _NOT_AN_IMAGE))
        with tf.control_dependencies([marked, named]):
            return tf.identity(row)

    def _blanks_then(self, failed: tf.Tensor, row: tf.Tensor) -> tf.Tensor:
        """The scan's output for one element: the rows `failed` before it (their files
        failed to read), stored as blanks, marked and named, then its own row (none for
        the end marker, whose row is -1)."""
        done = tf.cond(tf.size(failed) > 0, lambda: self._unreadable(failed), tf.no_op)
        with tf.control_dependencies([done]):
            return tf.concat([failed, row[None]], 0)[
                : tf.size(failed) + tf.cast(row >= 0, tf.int32)
            ]

    def _unreadable(self, rows: tf.Tensor) -> tf.Operation:
        """Zeros into `rows` of the cache, marked unreadable, named."""
        blanks = tf.zeros(tf.concat([tf.shape(rows), self._shape], 0), tf.uint8)
        stored = self.images.scatter_update(tf.IndexedSlices(blanks, rows))
        with tf.control_dependencies([stored]):
            states = tf.fill(tf.shape(rows), UNREADABLE)
            marked = self.state.scatter_update(tf.IndexedSlices(states, rows))
        return tf.group(marked, self._name(rows, _FAILED))

    def _name(self, rows: tf.Tensor, reason: str) -> tf.Operation:
        """Names each file of `rows` with `reason`, one line each on standard error."""
        lines = tf.strings.join(
            ["rps_tfdata: unreadable image ", tf.gather(self._paths, rows), f": {reason}"]
        )
        return tf.print(tf.strings.reduce_join(lines, separator="\n"), output_stream=sys.stderr)
