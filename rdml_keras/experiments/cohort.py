"""A run's cohort from its config: the peers (built by name, or loaded from
`peers.k.path`), each checked against the data, inside a `MutualLearner`
compiled with the config's optimizer. Nothing is written.

Example:

```python
learner = build_learner(config, bundle.input_shape, bundle.num_classes)
compile_learner(learner, config, steps=steps_per_epoch(bundle, config.batch_size))
```
"""

import os

import keras

from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.data import validation
from rdml_keras.experiments.divergences import build_divergence
from rdml_keras.experiments.optimizers import build_optimizer
from rdml_keras.experiments.run_files import RunError
from rdml_keras.experiments.run_files import first_line
from rdml_keras.learner import MutualLearner
from rdml_keras.models import build_peer


def _load_peer_file(path, k: int):
    where = f"peers.{k}.path {path}"
    if not os.path.isfile(path):
        raise RunError(f"{where}: no such file")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # zip, JSON and deserialisation errors of every kind
        raise RunError(
            f"{where}: cannot load a Keras model from it ({type(e).__name__}: {first_line(e)})"
        ) from None
    if not isinstance(model, keras.Model):
        raise RunError(f"{where}: holds a {type(model).__name__}, not a keras.Model")
    return model


def load_exported_peer(path):
    """An exported peer of a finished run (RunError naming a damaged file)."""
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras says "File not found" for a damaged zip
        raise RunError(
            f"{path}: cannot load this exported peer ({type(e).__name__}: {first_line(e)}); "
            "is the file damaged?"
        ) from None


def build_learner(config: ExperimentConfig, input_shape, num_classes, peers=None, options=None):
    """Peers (built from the config unless given) inside a MutualLearner.

    Every peer must take `input_shape` inputs and output `num_classes` logits
    (RunError otherwise, naming the peer). `options`: further `build_peer`
    arguments by architecture (a text run's vocabulary, `text_peers.peer_options`).
    """
    if peers is None:
        # SGD's (and Adam's) weight decay is the papers' L2 term; AdamW decays by itself.
        decay = config.optimizer.weight_decay if config.optimizer.name != "adamw" else 0.0
        peers = []
        for k, peer in enumerate(config.peers):
            if peer.path is not None:
                peers.append(_load_peer_file(peer.path, k))
                continue
            try:
                peers.append(
                    build_peer(
                        peer.architecture,
                        tuple(input_shape),
                        num_classes,
                        name=peer.name,
                        weight_decay=decay,
                        **(options or {}).get(peer.architecture, {}),
                    )
                )
            except ValueError as e:
                raise RunError(
                    f"peers.{k}.architecture: cannot build "
                    f"{peer.architecture!r} for inputs {tuple(input_shape)} and "
                    f"{num_classes} classes: {e}"
                ) from e
    for k, (peer, peer_config) in enumerate(zip(peers, config.peers)):
        where = (
            f"peers.{k}.path {peer_config.path}"
            if peer_config.path is not None
            else f"peers.{k} ({peer_config.label})"
        )
        try:
            validation.check_peer(peer, k, input_shape, num_classes, where)
        except validation.DataError as e:
            raise RunError(str(e)) from None
    div = config.divergence
    alpha = None
    if div.kind == "renyi":
        alpha = div.alpha if div.schedule == "constant" else div.alpha_max
    try:
        learner = MutualLearner(
            peers,
            divergence=build_divergence(div, num_classes),
            divergence_weight=div.weight,
            update=div.update,
            alpha=alpha,
            temperature=div.temperature,
        )
    except ValueError as e:
        raise RunError(f"peers: {e}") from None
    # RunCheckpoint.restore loads weights into a built model.
    learner.build((None, *tuple(input_shape)))
    return learner


def compile_learner(learner, config: ExperimentConfig, steps: int, one_hot=False):
    """Compile with the config's optimizer; MixUp/CutMix data has one-hot labels."""
    learner.compile(
        optimizer=build_optimizer(config.optimizer, config.epochs, steps),
        loss="categorical_crossentropy" if one_hot else None,
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return learner
