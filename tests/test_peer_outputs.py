"""Peers that output probabilities are refused at construction, on every backend.

Each softmax peer below names the layer that applies its softmax, so the
expected layer is known from how the model was built, not from the code.
"""

import keras
import pytest
from keras import layers

from rdml_keras import MutualLearner
from rdml_keras.peer_outputs import softmax_output_layer

pytestmark = pytest.mark.backends

FEATURES, CLASSES = 6, 4


def sequential(*last, name=None):
    return keras.Sequential([keras.Input((FEATURES,)), layers.Dense(8), *last], name=name)


def functional(*last, name=None):
    inputs = keras.Input((FEATURES,))
    x = layers.Dense(8)(inputs)
    for layer in last:
        x = layer(x)
    return keras.Model(inputs, x, name=name)


def logit_peer(name="logits"):
    return sequential(layers.Dense(CLASSES), name=name)


class KerasHubStyleClassifier(keras.Model):
    """Built as a KerasHub `ImageClassifier` is: a Functional model of its own
    class around a backbone model, whose `output_dense` carries `activation`."""

    def __init__(self, activation=None, **kwargs):
        backbone = functional(layers.Dense(8, activation="relu"), name="backbone")
        dropout = layers.Dropout(0.1, name="output_dropout")
        dense = layers.Dense(CLASSES, activation=activation, name="predictions")
        inputs = keras.Input((FEATURES,))
        super().__init__(inputs=inputs, outputs=dense(dropout(backbone(inputs))), **kwargs)
        # Set after `__init__`: PyTorch's Module refuses submodules before it.
        self.output_dropout, self.output_dense = dropout, dense


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.head = layers.Dense(CLASSES, activation="softmax")

    def call(self, x):
        return self.head(x)


def mobilenet_v2(classifier_activation="softmax"):
    return keras.applications.MobileNetV2(
        weights=None,
        input_shape=(32, 32, 3),
        alpha=0.35,
        classes=CLASSES,
        classifier_activation=classifier_activation,
    )


def mobilenet_v3_small(classifier_activation="softmax"):
    return keras.applications.MobileNetV3Small(
        weights=None,
        input_shape=(32, 32, 3),
        minimalistic=True,
        classes=CLASSES,
        classifier_activation=classifier_activation,
    )


def nested_in_functional():
    inner = sequential(layers.Dense(CLASSES, activation="softmax", name="probs"), name="inner")
    inputs = keras.Input((FEATURES,))
    return keras.Model(inputs, inner(inputs), name="outer")


def nested_in_sequential():
    inner = functional(layers.Dense(CLASSES), layers.Softmax(name="probs"), name="inner")
    return keras.Sequential([keras.Input((FEATURES,)), inner], name="outer")


# Each builds a softmax peer whose softmax is applied by a layer named "probs"
# (KerasHub names its image classifier's output layer "predictions").
SOFTMAX_PEERS = {
    "sequential_dense_softmax": lambda: sequential(
        layers.Dense(CLASSES, activation="softmax", name="probs")
    ),
    "functional_softmax_layer": lambda: functional(
        layers.Dense(CLASSES), layers.Softmax(name="probs")
    ),
    "activation_softmax_layer": lambda: sequential(
        layers.Dense(CLASSES), layers.Activation("softmax", name="probs")
    ),
    "dense_with_ops_softmax": lambda: functional(
        layers.Dense(CLASSES, activation=keras.ops.softmax, name="probs")
    ),
    "model_nested_in_functional": nested_in_functional,
    "model_nested_in_sequential": nested_in_sequential,
    "keras_hub_style_classifier": lambda: KerasHubStyleClassifier(activation="softmax"),
}
SOFTMAX_LAYER = {name: "probs" for name in SOFTMAX_PEERS} | {
    "keras_hub_style_classifier": "predictions"
}


@pytest.mark.parametrize("case", SOFTMAX_PEERS)
def test_softmax_output_layer_finds_the_softmax(case):
    layer = softmax_output_layer(SOFTMAX_PEERS[case]())
    assert layer is not None
    assert layer.name == SOFTMAX_LAYER[case]


def test_keras_ops_softmax_in_a_functional_graph_is_found():
    inputs = keras.Input((FEATURES,))
    peer = keras.Model(inputs, keras.ops.softmax(layers.Dense(CLASSES)(inputs)))
    assert softmax_output_layer(peer) is not None


@pytest.mark.parametrize("case", SOFTMAX_PEERS)
def test_a_softmax_peer_is_refused(case):
    peer = SOFTMAX_PEERS[case]()
    with pytest.raises(ValueError) as error:
        MutualLearner([peer, logit_peer()])
    message = str(error.value)
    assert f"`peers[0]` (model {peer.name!r}) must output logits" in message
    assert f"last layer {SOFTMAX_LAYER[case]!r} applies a softmax" in message
    assert "probabilities" in message
    assert "`classifier_activation=None`" in message
    assert "`activation=None`" in message


@pytest.mark.parametrize("build", [mobilenet_v2, mobilenet_v3_small])
def test_keras_applications_default_classifier_is_refused(build):
    peer = build()  # classifier_activation="softmax", the default
    with pytest.raises(ValueError) as error:
        MutualLearner([peer, build(classifier_activation=None)])
    message = str(error.value)
    assert f"`peers[0]` (model {peer.name!r}) must output logits" in message
    # Both applications name their classifier's last layer "predictions".
    assert "last layer 'predictions' applies a softmax" in message
    assert "`classifier_activation=None` for a keras.applications model" in message


def test_the_error_names_the_softmax_peer_not_the_logit_one():
    soft = sequential(layers.Dense(CLASSES, activation="softmax"), name="soft")
    with pytest.raises(ValueError, match=r"`peers\[1\]` \(model 'soft'\)") as error:
        MutualLearner([logit_peer(), soft])
    assert "peers[0]" not in str(error.value)


def test_refused_without_a_divergence_too():
    soft = sequential(layers.Dense(CLASSES, activation="softmax"), name="soft")
    with pytest.raises(ValueError, match=r"`peers\[0\]` \(model 'soft'\) must output logits"):
        MutualLearner([soft], divergence=None)


LOGIT_PEERS = {
    "linear_dense": logit_peer,
    "relu_dense": lambda: sequential(layers.Dense(CLASSES, activation="relu")),
    "log_softmax": lambda: functional(layers.Dense(CLASSES, activation="log_softmax")),
    "softmax_then_dense": lambda: functional(layers.Softmax(), layers.Dense(CLASSES)),
    "model_nested_with_logits": lambda: keras.Sequential(
        [keras.Input((FEATURES,)), logit_peer(name="inner")]
    ),
    "keras_hub_style_classifier": lambda: KerasHubStyleClassifier(activation=None),
    "unbuilt_sequential": lambda: keras.Sequential([layers.Dense(CLASSES)]),
}


@pytest.mark.parametrize("case", LOGIT_PEERS)
def test_logit_peers_are_accepted(case):
    build = LOGIT_PEERS[case]
    assert softmax_output_layer(build()) is None
    learner = MutualLearner([build(), build()])
    assert len(learner.peers) == 2


@pytest.mark.parametrize("build", [mobilenet_v2, mobilenet_v3_small])
def test_keras_applications_without_the_softmax_are_accepted(build):
    peers = [build(classifier_activation=None), build(classifier_activation=None)]
    assert MutualLearner(peers).peers == peers


def test_subclassed_models_are_not_inspected():
    # Its `call` is Python that Keras cannot see: documented as not checked.
    assert softmax_output_layer(Subclassed()) is None
    MutualLearner([Subclassed(), Subclassed()])
