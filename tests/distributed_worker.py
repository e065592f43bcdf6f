"""One process of tests/test_distribution.py (run as a script on JAX).

    python distributed_worker.py OUT.npz                        # reference
    python distributed_worker.py OUT.npz PORT NUM_PROCESSES ID  # one of N
    python distributed_worker.py OUT.npz local UNUSED_PORT      # 2 devices

The reference is one process on one device. One of N joins the others
through `rdml_keras.distribution.initialize_multiprocess` and feeds its shard
of every global batch. `local` first checks that joining a coordinator nobody
listens on fails with a ValueError within its timeout, then trains with
`data_parallel()` over the host devices XLA_FLAGS asks for. Either way it
trains the same two-peer Rényi cohort through `fit` on the same global
batches (with sample weights and λ > 0, so CE and the divergence both shape
the gradient) and saves the final weights and the logged per-epoch metrics.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from rdml_keras import MutualLearner  # noqa: E402
from rdml_keras import distribution  # noqa: E402

SEED = 7
BATCH = 16
FEATURES, CLASSES = 6, 4


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=96)
    w = rng.uniform(0.2, 2.0, size=96).astype("float32")
    return x, y, w


def cohort():
    def peer(name, width):
        return keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(width, activation="tanh"),
                keras.layers.Dense(CLASSES),
            ],
            name=name,
        )

    learner = MutualLearner(
        [peer("a", 8), peer("b", 5)],
        divergence="renyi",
        alpha=1.5,
        divergence_weight=2.0,
    )
    learner.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"])
    return learner


def main(out, port=None, num_processes=1, process_id=0):
    extra = {}
    if port == "local":
        try:
            distribution.initialize_multiprocess(f"127.0.0.1:{num_processes}", 2, 1, timeout=2)
        except ValueError as error:
            extra["unreachable"] = np.asarray(str(error))
        keras.utils.set_random_seed(SEED)
        extra["devices"] = np.asarray(len(distribution.data_parallel().device_mesh.devices.ravel()))
    elif port is None:
        keras.utils.set_random_seed(SEED)
    else:
        distribution.initialize_multiprocess(
            f"127.0.0.1:{port}",
            int(num_processes),
            int(process_id),
            timeout=30,
            seed=SEED,
        )
    x, y, w = data()
    learner = cohort()
    initial = [v.numpy() for v in learner.trainable_variables]
    batches = distribution.GlobalBatches(x, y, w, batch_size=BATCH, shuffle=True, seed=3)
    history = learner.fit(batches, epochs=2, verbose=0).history
    final = {f"w{i}": np.asarray(v.numpy()) for i, v in enumerate(learner.trainable_variables)}
    logs = {f"log_{k}": np.asarray(v, dtype="float64") for k, v in history.items()}
    extra.update({"initial_" + str(i): a for i, a in enumerate(initial)})
    extra["local_batch"] = np.asarray(batches[0][0].shape[0])
    extra["processes"] = np.asarray(distribution.process_count())
    if port is None:
        # What one shard alone would give (no summing across processes): the
        # test checks the distributed run is far from it, so the comparison
        # can tell a missing all-reduce from a correct one.
        keras.utils.set_random_seed(SEED)
        alone = cohort()
        half = distribution.GlobalBatches(
            x,
            y,
            w,
            batch_size=BATCH,
            shuffle=True,
            seed=3,
            num_processes=2,
            process_id=0,
        )
        alone.fit(half, epochs=2, verbose=0)
        for i, v in enumerate(alone.trainable_variables):
            extra[f"alone{i}"] = np.asarray(v.numpy())
    np.savez(out, **final, **logs, **extra)


if __name__ == "__main__":
    main(*sys.argv[1:])
