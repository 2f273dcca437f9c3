"""Classifies image files and folders with a finished run.

    python -m rps_tfdata.predict --model_dir=runs/rps PATH [PATH ...]
    python -m rps_tfdata.predict --saved_model=runs/rps/export/1 PATH [PATH ...]

Folders are searched recursively for image files (the extensions the listing accepts).
Prints one line per readable image: with `--format=tsv` (the default) path, class name
and probability, tab-separated (with `--top_k=K`, the K most probable classes and their
probabilities in turn); with `--format=jsonl` one JSON object per line, `{"path",
"classes", "probabilities"}`, and `{"path", "skipped"}` for a file that could not be
read. Each unreadable file is also named on stderr with the reason; the exit status is
then 3 (SKIPPED_EXIT), so a script can tell a complete answer from a partial one.
"""

import json
import sys
from typing import Sequence

from absl import app

from rps_tfdata.cli import command, flag_defs
from rps_tfdata.infra.fs import printable

SKIPPED_EXIT = 3
_F = flag_defs.define("model_dir", "batch_size", "saved_model", "top_k", "format")


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.serving import predictions as served  # TensorFlow starts with the command
    from rps_tfdata.trainer import artifacts, evaluation

    if len(argv) < 2:
        raise app.UsageError("pass at least one image file or folder to classify")
    paths = served.expand_paths(argv[1:])
    if _F.saved_model.value:
        predictions = served.classify_exported(
            _F.saved_model.value, paths, batch_size=_F.batch_size.value
        )
    else:
        finished = artifacts.load_run(_F.model_dir.value, batch_size=_F.batch_size.value)
        predictions = evaluation.classify(finished, paths)
    jsonl = _F.format.value == "jsonl"
    for path, ranked in predictions.top(_F.top_k.value):
        if jsonl:
            names, probabilities = [n for n, _ in ranked], [p for _, p in ranked]
            print(json.dumps({"path": path, "classes": names, "probabilities": probabilities}))
        else:
            print("\t".join([printable(path), *(f"{n}\t{p:.4f}" for n, p in ranked)]))
    for bad in predictions.bad:
        if jsonl:
            print(json.dumps({"path": bad.path, "skipped": bad.reason}))
        print(f"skipped {printable(bad.path)}: {bad.reason}", file=sys.stderr)
    if predictions.bad:
        sys.exit(SKIPPED_EXIT)


def run() -> None:
    """Console-script entry point (`rps-predict`)."""
    command.run(main)


if __name__ == "__main__":
    run()
