"""The library: ImageDataGenerator's semantics as tf.data, with nothing of a trainer.

- `reading`: files (or arrays) into a split read once, as IDG reads them: its walk and
  split (`listing`), the header screen (`headers`, `file_facts`), decode and PIL's
  resize (`decode`, `pil_resize`), the caches and the choice between them (`prepare`,
  `disk_cache`, `cache_policy`), and the one reader of directories, file lists and
  arrays (`reader`);
- `transforms`: IDG's augmentation as one Keras layer (`augment`) and its
  standardisation (`standardize`);
- `passes`: the pass builder, pass after pass, each batch handed to the caller's step.
`options` holds the settings they share. Nothing here imports the trainer, serving or
the drop-in; it stands on `rps_tfdata.infra` alone.
"""
