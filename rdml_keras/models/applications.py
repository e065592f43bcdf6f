"""`keras.applications` models by name, without their top, as peer backbones:
ImageNet weights (`weights="imagenet"`, downloaded once by Keras) or a local
weights file saved from the same model without its top. Every check runs
before anything is built.

Example:

>>> "MobileNetV2" in APPLICATIONS
True
>>> application_name("mobilenet_v2", "peer0")
'MobileNetV2'
"""

import inspect
import os

import keras

from rdml_keras.models import _common


def _applications():
    """`{name: (constructor, preprocess_input)}` of every `keras.applications` model."""
    found = {}
    for module_name in dir(keras.applications):
        module = getattr(keras.applications, module_name)
        if not inspect.ismodule(module) or not hasattr(module, "preprocess_input"):
            continue
        for name in dir(module):
            value = getattr(module, name)
            if name[:1].isupper() and callable(value):
                found[name] = (value, module.preprocess_input)
    return dict(sorted(found.items()))


_BY_NAME = _applications()
APPLICATIONS = tuple(_BY_NAME)
"""The `keras.applications` model names `application_peer` builds."""


def application_name(application, where):
    by_key = {name.lower(): name for name in APPLICATIONS}
    key = (
        application.strip().lower().replace("-", "").replace("_", "")
        if isinstance(application, str)
        else None
    )
    if key not in by_key:
        raise ValueError(
            f"{where}: `application` must be a keras.applications model, one of "
            f"{', '.join(APPLICATIONS)}; received application={application!r}."
        )
    return by_key[key]


def weights_file(weights, where):
    """The local weights file `weights` names (checked to exist), or None."""
    if weights is None or weights == "imagenet":
        return None
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str) or not os.path.isfile(os.path.expanduser(weights)):
        raise ValueError(
            f"{where}: `weights` must be 'imagenet', None, or the path of a weights file "
            f"saved from the model without its top (model.save_weights('x.weights.h5')); "
            f"received weights={weights!r}"
            + (", which does not exist." if isinstance(weights, str) else ".")
        )
    return os.path.expanduser(weights)


def load_application(name, input_shape, weights, weights_file, kwargs, where):
    constructor = _BY_NAME[name][0]
    for reserved in ("include_top", "input_tensor", "classes", "classifier_activation"):
        if reserved in kwargs:
            raise ValueError(
                f"{where}: `{reserved}` is set by the peer (no top, a fresh head); remove it."
            )
    try:
        backbone = constructor(
            include_top=False,
            weights="imagenet" if weights == "imagenet" else None,
            input_shape=input_shape,
            pooling=None,
            **kwargs,
        )
    except Exception as e:  # bad sizes (ValueError), unknown kwargs (TypeError), no network
        hint = (
            " weights='imagenet' downloads the weights once (then they are cached in "
            "~/.keras/models); offline, pass weights=PATH of a local file."
            if weights == "imagenet" and not isinstance(e, (ValueError, TypeError))
            else ""
        )
        raise ValueError(
            f"{where}: keras.applications.{name}(include_top=False, input_shape="
            f"{input_shape}, {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: "
            f"{_common.first_line(e)}.{hint}"
        ) from e
    if weights_file is not None:
        try:
            backbone.load_weights(weights_file)
        except Exception as e:
            raise ValueError(
                f"{where}: the weights file {weights_file!r} does not fit {name} without its "
                f"top at input_shape={input_shape} ({_common.first_line(e)}); save it from "
                f"keras.applications.{name}(include_top=False, ...) with the same arguments."
            ) from e
    return backbone


def preprocess_input(name):
    """The `preprocess_input` of the `keras.applications` model `name`."""
    return _BY_NAME[name][1]
