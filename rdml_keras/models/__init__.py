"""Peer architectures for mutual learning, built by name.

Every builder returns a functional `keras.Model` from its inputs to float32
logits: channels-last images, or for the text peers (`fasttext`, `text_cnn`,
`char_cnn`, in `rdml_keras.models.text`) integer token ids of shape
`(sequence_length,)`. The last Dense is float32 under any mixed-precision
policy, and each model has a name that is unique in the Keras session
(`resnet32`, `resnet32_1`, ...), so two peers of the same architecture can
sit in one learner.

Example:

>>> from rdml_keras.models import build_peer
>>> peers = [build_peer("resnet32", (32, 32, 3), 100) for _ in range(2)]
>>> [p.name for p in peers]
['resnet32', 'resnet32_1']
"""

import functools
from collections.abc import Mapping

from rdml_keras.architectures import ARCHITECTURES
from rdml_keras.architectures import TEXT_ARCHITECTURES
from rdml_keras.architectures import is_valid_architecture
from rdml_keras.architectures import resolve
from rdml_keras.models.applications import APPLICATIONS
from rdml_keras.models.backbone import PretrainedBackbone
from rdml_keras.models.mobilenet import mobilenet_v2
from rdml_keras.models.pretrained import CheckpointPreprocessing
from rdml_keras.models.pretrained import application_peer
from rdml_keras.models.pretrained import checkpoint_peer
from rdml_keras.models.pretrained import checkpoint_preprocessing
from rdml_keras.models.pretrained import preset_peer
from rdml_keras.models.resnet import ZeroPadShortcut
from rdml_keras.models.resnet import cifar_resnet
from rdml_keras.models.small import mlp
from rdml_keras.models.small import small_cnn
from rdml_keras.models.text import char_cnn
from rdml_keras.models.text import fasttext
from rdml_keras.models.text import text_cnn
from rdml_keras.models.text import with_vectorizer
from rdml_keras.models.vgg import vgg16_bn
from rdml_keras.models.wide_resnet import wide_resnet
from rdml_keras.models.word_vectors import load_word_vectors

# The builder of each fixed name of `rdml_keras.architectures.FAMILIES`.
_BUILDERS = {
    "char_cnn": char_cnn,
    "fasttext": fasttext,
    "mlp": mlp,
    "mobilenetv2": mobilenet_v2,
    "resnet20": functools.partial(cifar_resnet, 20),
    "resnet32": functools.partial(cifar_resnet, 32),
    "resnet44": functools.partial(cifar_resnet, 44),
    "resnet56": functools.partial(cifar_resnet, 56),
    "resnet110": functools.partial(cifar_resnet, 110),
    "small_cnn": small_cnn,
    "text_cnn": text_cnn,
    "vgg16_bn": vgg16_bn,
}


def _builder(architecture):
    """The family builder `architecture` names, or ValueError naming it."""
    family, wrn = resolve(architecture)
    if family == "wrn":
        return functools.partial(wide_resnet, *wrn)
    return _BUILDERS[family]


def build_peer(
    architecture,
    input_shape,
    num_classes,
    name=None,
    weight_decay=0.0,
    **kwargs,
):
    """Builds one peer network by architecture name.

    Args:
        architecture: one of `ARCHITECTURES`, or `"wrn_{depth}_{width}"` for
            any Wide ResNet with `(depth - 4) % 6 == 0`. Case and `-`/`_`
            are not significant (`"WRN-28-10"` works). Or a pretrained
            checkpoint entry, `{"preset": HANDLE_OR_DIR, ...}` (KerasHub) or
            `{"application": NAME, "weights": "imagenet" | PATH, ...}`
            (keras.applications), built by `checkpoint_peer` with a fresh
            head (`rdml_keras.models.pretrained`).
        input_shape: `(height, width, channels)` of one example, channels
            last (any shape for `"mlp"`); `(sequence_length,)` of the token
            ids for the text peers (`TEXT_ARCHITECTURES`).
        num_classes: number of classes (>= 2); the model outputs that many
            float32 logits.
        name: model name; by default the architecture name, suffixed `_1`,
            `_2`, ... for further peers of the same architecture.
        weight_decay: SGD-style weight decay `wd` (the papers use 5e-4),
            applied as an L2 penalty `wd / 2 * ||w||^2` on every conv and
            dense kernel, which gives exactly SGD's `w -= lr * wd * w` update.
            The penalty lands in `model.losses`. Leave it at 0 when the
            optimizer decays weights itself (AdamW, `SGD(weight_decay=...)`).
        **kwargs: passed to the family builder, e.g. `dropout_rate` for Wide
            ResNets, `width_multiplier` for MobileNetV2, `hidden_units` for the MLP;
            the text peers need `vocabulary_size` and take `embedding_dim`,
            `embeddings` (see `load_word_vectors`), etc.

    Returns:
        A functional `keras.Model` from inputs to logits of shape
        `(batch, num_classes)`.

    Raises:
        ValueError: unknown architecture, WRN depth not `6n + 4`,
            `num_classes < 2`, or an input shape the architecture cannot take.

    Example:

    >>> peer = build_peer("resnet32", (32, 32, 3), num_classes=100)
    >>> peer.output_shape
    (None, 100)
    >>> build_peer("wrn_16_4", (32, 32, 3), 10, dropout_rate=0.3).name
    'wrn_16_4'
    >>> build_peer("fasttext", (256,), 8, vocabulary_size=20000).output_shape
    (None, 8)
    >>> entry = {"application": "MobileNetV2", "weights": None, "alpha": 0.35}
    >>> build_peer(entry, (32, 32, 3), 10).name
    'mobilenetv2'
    """
    if isinstance(architecture, Mapping):
        return checkpoint_peer(
            {**architecture, **kwargs},
            input_shape,
            num_classes,
            name=name,
            weight_decay=weight_decay,
        )
    builder = _builder(architecture)
    return builder(
        input_shape=input_shape,
        num_classes=num_classes,
        weight_decay=weight_decay,
        name=name,
        **kwargs,
    )


__all__ = [
    "APPLICATIONS",
    "ARCHITECTURES",
    "CheckpointPreprocessing",
    "PretrainedBackbone",
    "TEXT_ARCHITECTURES",
    "ZeroPadShortcut",
    "application_peer",
    "build_peer",
    "checkpoint_peer",
    "checkpoint_preprocessing",
    "char_cnn",
    "cifar_resnet",
    "fasttext",
    "is_valid_architecture",
    "load_word_vectors",
    "mlp",
    "mobilenet_v2",
    "preset_peer",
    "small_cnn",
    "text_cnn",
    "vgg16_bn",
    "wide_resnet",
    "with_vectorizer",
]
