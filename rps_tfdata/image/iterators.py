"""What a `flow*` returns: a `tf.data.Dataset` that also answers as IDG's iterator.

`model.fit`, `evaluate` and `predict` take it as a dataset (in the graph, at the
pipeline's speed, on every backend); a script that touches it in Python gets IDG's
habits:
  next(flow)       the next batch, as NumPy arrays, pass after pass without end (IDG's
                   `next`: a new order and new augmentation at each pass)
  flow[i]          batch i of the current pass (IDG's `__getitem__`; past the end, IDG's
                   error)
  len(flow)        the batches of one pass
  flow.reset()     back to the first batch of the current pass
  flow.on_epoch_end()  a new pass (a new order and new augmentation)
  for b in flow    one pass of NumPy batches (a dataset's iteration: it ends)
The batches a script gets are NumPy arrays (`.reshape`, `.astype`, in-place arithmetic),
inputs and targets of several arrays as lists, as IDG gives them. The Python view walks
passes of its own (numbered from `seed`); each iteration of the dataset by Keras draws
its own. Inside a `tf.function` (Keras' TensorFlow trainer) iteration gives tensors, as
any dataset's.

The dataset is TensorFlow's own wrapped unchanged (`UnaryUnchangedStructureDataset`, the
class of `Dataset.with_options`' result): a private TensorFlow class, the one way to
give a dataset methods of its own.
"""

from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf
from tensorflow.python.data.ops import dataset_ops, iterator_ops
from tensorflow.python.framework import ops


def _as_idg(element: Any) -> Any:
    """A batch as IDG's iterator gives it: NumPy arrays, several inputs or targets as a
    list (a dataset holds them as tuples)."""
    arrays = tf.nest.map_structure(lambda tensor: tensor.numpy(), element)
    if not isinstance(arrays, tuple):
        return arrays
    return tuple(list(part) if isinstance(part, tuple) else part for part in arrays)


class _PythonIterator(iterator_ops.OwnedIterator):
    """A dataset's iterator that gives NumPy batches to Python; inside a `tf.function`
    it is TensorFlow's own (a traced function rebuilds it from its type)."""

    def __next__(self) -> Any:
        element = super().__next__()
        return element if ops.inside_function() else _as_idg(element)


class Iterator(dataset_ops.UnaryUnchangedStructureDataset):
    """A flow: IDG's batches as a `tf.data.Dataset`, with IDG's iterator habits (module
    doc) and the iterator's attributes (`n`, `batch_size`, `shuffle`, `seed`, ...).

    Args:
      dataset: the flow's dataset, pass after pass as it is iterated.
      one_pass: `one_pass(pass_number, skip_images=0)`, one pass on its own.
      batch_size: images per batch.
      seed: numbers the Python view's passes (None: new ones in each process).
    """

    def __init__(
        self,
        dataset: tf.data.Dataset,
        one_pass: Callable[..., tf.data.Dataset],
        *,
        batch_size: int,
        seed: Optional[int],
    ):
        super().__init__(dataset, dataset._variant_tensor)
        self._one_pass = one_pass
        self._pass_numbers = np.random.default_rng(seed)
        self._pass: Optional[int] = None
        self._batches = None  # the Python view's current pass, from `batch_index` on
        self._length = int(dataset.cardinality())
        self.batch_size = batch_size
        self.batch_index = 0
        self.total_batches_seen = 0

    def __len__(self) -> int:
        """The batches of one pass."""
        return self._length

    def __iter__(self):
        if ops.inside_function():
            return super().__iter__()
        with ops.colocate_with(self._variant_tensor):
            return _PythonIterator(self)

    def __next__(self) -> Any:
        """IDG's `next`: the next batch of the current pass; after its last, a new pass."""
        if self._batches is None:
            skip = self.batch_index * self.batch_size
            self._batches = iter(self._one_pass(self._current_pass(), skip))
        batch = _as_idg(next(self._batches))
        self.total_batches_seen += 1
        self.batch_index += 1
        if self.batch_index == len(self):
            self.on_epoch_end()
        return batch

    def next(self) -> Any:
        """`next(flow)`, as IDG 2's iterators spelled it."""
        return self.__next__()

    def __getitem__(self, index: int) -> Any:
        """Batch `index` of the current pass (IDG's `__getitem__`).

        Raises:
          ValueError: `index` past the last batch (IDG's message).
        """
        length = len(self)
        if not 0 <= index < length:
            raise ValueError(
                f"Asked to retrieve element {index}, but the Sequence has length {length}"
            )
        self.total_batches_seen += 1
        one = self._one_pass(self._current_pass(), index * self.batch_size).take(1)
        return _as_idg(next(iter(one)))

    def reset(self) -> None:
        """Back to the first batch of the current pass (IDG's `reset`)."""
        self.batch_index = 0
        self._batches = None

    def on_epoch_end(self) -> None:
        """A new pass from the first batch: a new order and new augmentation."""
        self._pass = None
        self.reset()

    def _current_pass(self) -> int:
        if self._pass is None:
            self._pass = int(self._pass_numbers.integers(2**31))
        return self._pass
