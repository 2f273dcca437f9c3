"""A flow beyond one machine: built under `MultiWorkerMirroredStrategy` it reads and
augments only its worker's share (two workers on 127.0.0.1, each a real process, each
pass redrawn); `flow.distribute` has the tf.data service's workers make its batches (a
dispatcher and two workers started by the test)."""

import json
import os
import threading

import numpy as np
import pandas as pd
import pytest

from rps_tfdata.image import ImageDataGenerator
from rps_tfdata.image.flows import served_pass_number

from .helpers import RPS28, free_ports, launch, service, stopped_at_exit

# One worker: a flow over the carried images, built in the strategy's scope, read two
# passes through `distribute_datasets_from_function` by a step that sums every
# replica's images (the collective that needs both workers at every step). Targets
# are the images' rows ("raw"), so each batch names its images.
WORKER = """
import json, os, sys
import numpy as np
import pandas as pd
import tensorflow as tf
from rps_tfdata.image import ImageDataGenerator

strategy = tf.distribute.MultiWorkerMirroredStrategy()
root = sys.argv[1]
names = [os.path.join(c, f) for c in os.listdir(root) for f in os.listdir(os.path.join(root, c))]
files = sorted(names)[:59]  # two shares of 30 and 29
frame = pd.DataFrame({"filename": files, "row": np.arange(len(files))})
generator = ImageDataGenerator(rotation_range=40, horizontal_flip=True)
keywords = dict(directory=root, y_col="row", class_mode="raw", target_size=(28, 28), seed=7)
with strategy.scope():
    flow = generator.flow_from_dataframe(frame, batch_size=8, **keywords)
    try:
        generator.flow_from_dataframe(frame, batch_size=2, **keywords)
        refused = ""
    except ValueError as error:
        refused = str(error)

@tf.function
def step(x):
    counts = strategy.run(lambda images: tf.shape(images)[0], args=(x,))
    return strategy.reduce("SUM", counts, axis=None)

passes = []
for _ in range(2):
    rows, pixels, totals = [], {}, []
    for x, y in strategy.distribute_datasets_from_function(lambda context: flow):
        totals.append(int(step(x)))
        x, y = (strategy.experimental_local_results(v)[0].numpy() for v in (x, y))
        for image, row in zip(x, y):
            rows.append(int(row))
            pixels[int(row)] = float(image.sum())
    passes.append({"rows": rows, "pixels": pixels, "totals": totals})
print("WORKER " + json.dumps({"files": flow.filenames, "batch_size": flow.batch_size,
                              "length": len(flow), "passes": passes, "refused": refused}))
"""


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> list[dict]:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        scratch = tmp_path_factory.mktemp(f"worker{index}")
        env = {"TF_CONFIG": json.dumps(config), "TMPDIR": str(scratch)}
        processes.append(launch(["-c", WORKER, RPS28], env=env))
    results = []
    with stopped_at_exit(*processes):
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
            line = next(x for x in out.splitlines() if x.startswith("WORKER "))
            said = [x for x in out.splitlines() if x.startswith("Worker ")]
            results.append({**json.loads(line[len("WORKER ") :]), "said": said})
    return results


@pytest.mark.slow
def test_each_worker_reads_only_its_share_and_together_every_image(workers):
    folders = sorted(os.listdir(RPS28))
    files = sorted(os.path.join(c, f) for c in folders for f in os.listdir(f"{RPS28}/{c}"))[:59]
    first, second = (set(w["files"]) for w in workers)
    assert not first & second and first | second == set(files)
    assert [len(w["files"]) for w in workers] == [30, 29]
    for index, worker in enumerate(workers):
        # Every other image from the worker's index, the global batch of 8 split in 4s.
        assert set(worker["files"]) == set(files[index::2])
        assert (worker["batch_size"], worker["length"]) == (4, 8)
        assert worker["said"][0] == (
            f"Worker {index} of 2 reads {30 - index} of the 59 images (one in 2, from image "
            f"{index}), 4 per replica."
        )


@pytest.mark.slow
def test_every_pass_holds_each_image_of_the_share_once_in_a_new_order(workers):
    for index, worker in enumerate(workers):
        share = list(range(index, 59, 2))
        first, second = worker["passes"]
        assert sorted(first["rows"]) == sorted(second["rows"]) == share
        assert first["rows"] != second["rows"]  # the pass is redrawn: a new order ...
        changed = [r for r in share if first["pixels"][str(r)] != second["pixels"][str(r)]]
        assert len(changed) > len(share) // 2  # ... and new augmentation
        # Every step met both workers' replicas: 8 images a step, the last 2 + 1.
        assert first["totals"] == second["totals"] == [8] * 7 + [3]


@pytest.mark.slow
def test_a_batch_size_that_gives_the_workers_unequal_passes_is_refused(workers):
    for worker in workers:
        assert worker["refused"] == (
            "batch_size: 59 images over 2 workers at 1 per replica give one worker 29 steps "
            "a pass and another 30; choose a batch_size that evens them"
        )


def frame() -> pd.DataFrame:
    """The carried images, each with its row as its target."""
    folders = sorted(os.listdir(RPS28))
    files = sorted(os.path.join(c, f) for c in folders for f in os.listdir(f"{RPS28}/{c}"))
    return pd.DataFrame({"filename": files, "row": np.arange(len(files))})


def service_flow(**changes):
    generator = ImageDataGenerator(rotation_range=40, horizontal_flip=True, rescale=1 / 255)
    keywords = dict(directory=RPS28, y_col="row", class_mode="raw", target_size=(28, 28))
    return generator.flow_from_dataframe(frame(), batch_size=8, seed=5, **{**keywords, **changes})


def keyed(batches) -> dict[bytes, bytes]:
    """Each batch by its images' rows: the bytes of its pixels."""
    return {np.asarray(y).tobytes(): np.asarray(x).tobytes() for x, y in batches}


@pytest.mark.slow
def test_the_services_workers_make_the_flows_own_batches_each_image_once_a_pass(tmp_path):
    flow = service_flow(cache="disk", cache_dir=str(tmp_path))
    with service(workers=2) as (address, _):
        delivered = list(flow.distribute(address, epochs=2).as_numpy_iterator())
    assert len(delivered) == 2 * len(flow) == 16
    rows = np.concatenate([y for _, y in delivered])
    assert sorted(rows) == sorted(list(range(60)) * 2)  # each image once in each pass
    # Each batch is the flow's own batch of its pass, made whole on this machine.
    expected = {}
    for turn in range(2):
        expected |= keyed(flow._one_pass(served_pass_number(5, turn)).as_numpy_iterator())
    assert keyed(delivered) == expected


def refusal(flow) -> str:
    """What `flow.distribute` raises for an address where nothing listens (a refusal
    comes before any call to the service; a flow that tried would wait on the dispatcher
    for ever, so the call runs in a thread and a minute without an answer fails)."""
    answer = []

    def attempt():
        try:
            flow.distribute("grpc://127.0.0.1:1")
            answer.append("not refused")
        except ValueError as error:
            answer.append(str(error))

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert answer, "flow.distribute was not refused: it is waiting on the dispatcher"
    return answer[0]


def test_a_flow_whose_graph_cannot_travel_to_the_services_workers_is_refused():
    in_memory = service_flow(cache="memory")
    assert refusal(in_memory).startswith("flow.distribute: the flow holds its images in memory")
    in_python = ImageDataGenerator(
        preprocessing_function=lambda image: np.asarray(image)[::-1].copy()  # NumPy only
    ).flow_from_dataframe(
        frame(), RPS28, y_col="row", class_mode="raw", target_size=(28, 28), cache="none"
    )
    assert refusal(in_python).startswith("flow.distribute: preprocessing_function runs in")
