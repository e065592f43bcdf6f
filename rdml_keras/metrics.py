"""The cohort's supervised loss on logits, and every peer's own metrics.

Peers output logits, so named losses resolve to their `from_logits=True`
variants, and each compiled metric is copied once per peer and once for the
ensemble (`peer{k}_<name>`, `ensemble_<name>`).
"""

import keras
from keras import ops

from rdml_keras import checks

_LOGIT_LOSSES = {
    "sparse_categorical_crossentropy": lambda: keras.losses.SparseCategoricalCrossentropy(
        from_logits=True
    ),
    "categorical_crossentropy": lambda: keras.losses.CategoricalCrossentropy(from_logits=True),
}


def supervised_loss(loss):
    """Return a `keras.losses.Loss` on logits for `compile(loss=...)`.

    Example:

    >>> supervised_loss(None).from_logits
    True
    """
    if loss is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(loss, keras.losses.Loss):
        return loss
    if isinstance(loss, str) and loss in _LOGIT_LOSSES:
        return _LOGIT_LOSSES[loss]()
    names = ", ".join(repr(name) for name in _LOGIT_LOSSES)
    checks.fail(
        "loss",
        loss,
        f"None (sparse categorical cross-entropy), one of {names}, or a keras.losses.Loss instance",
        " Peers output logits: named losses are taken with from_logits=True.",
    )


def is_sparse(loss):
    return not isinstance(loss, keras.losses.CategoricalCrossentropy)


def single_metric(identifier, name, sparse):
    """A fresh metric object for one peer (or the ensemble)."""
    if isinstance(identifier, keras.metrics.Metric):
        config = identifier.get_config()
        config["name"] = name
        return identifier.__class__.from_config(config)
    if identifier in ("accuracy", "acc"):
        cls = (
            keras.metrics.SparseCategoricalAccuracy if sparse else keras.metrics.CategoricalAccuracy
        )
        return cls(name=name)
    resolved = keras.metrics.get(identifier)
    if isinstance(resolved, keras.metrics.Metric):
        return single_metric(resolved, name, sparse)
    return keras.metrics.MeanMetricWrapper(resolved, name=name)


def base_name(identifier):
    if isinstance(identifier, str):
        return "accuracy" if identifier == "acc" else identifier
    if isinstance(identifier, keras.metrics.Metric):
        return identifier.name
    return getattr(identifier, "__name__", str(identifier))


class CohortMetrics:
    """Metric objects for each peer and for the ensemble.

    A plain container rather than a list attribute of the model: Keras locks a
    built model's state, and a `.keras` file is compiled after it is built.

    Example:

    >>> loss = supervised_loss(None)
    >>> [m.name for m in CohortMetrics(["accuracy"], 2, loss)]
    ['peer0_accuracy', 'peer1_accuracy', 'ensemble_accuracy']
    """

    def __init__(self, metrics, num_peers, supervised_loss):
        if metrics is None:
            metrics = []
        if not isinstance(metrics, (list, tuple)):
            checks.fail("metrics", metrics, "a list or tuple of metrics, or None")
        sparse = is_sparse(supervised_loss)
        prefixes = [f"peer{k}" for k in range(num_peers)] + ["ensemble"]
        # One group per output: peer 0 … peer K−1, then the ensemble.
        self.groups = [
            [
                single_metric(identifier, f"{prefix}_{base_name(identifier)}", sparse)
                for identifier in metrics
            ]
            for prefix in prefixes
        ]

    def __iter__(self):
        return (metric for group in self.groups for metric in group)

    def __len__(self):
        # torch.compile guards on the length of a container the step iterates.
        return sum(len(group) for group in self.groups)

    def update_state(self, y, outputs, sample_weight=None):
        """Update group g with `outputs[g]` (peer logits, then the ensemble)."""
        for group, output in zip(self.groups, outputs):
            for metric in group:
                metric.update_state(y, output, sample_weight=sample_weight)


class LatestValue(keras.metrics.Metric):
    """Reports the last value it was given, e.g. α as the compiled step saw it.

    A metric rather than a read in `compute_metrics`: on JAX the step is a pure
    function, and only metric variables are state there.

    Example:

    >>> metric = LatestValue(name="alpha")
    >>> metric.update_state(1.5)
    >>> float(metric.result())
    1.5
    """

    def __init__(self, name="latest_value", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        # Every replica sees the same value: keep the first replica's.
        self.value = self.add_variable(
            shape=(),
            initializer="zeros",
            name="value",
            aggregation="only_first_replica",
        )

    def update_state(self, value):
        self.value.assign(ops.cast(value, self.dtype))

    def result(self):
        return ops.copy(self.value.value)
