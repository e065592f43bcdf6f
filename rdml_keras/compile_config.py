"""`RecompilesFromConfig`: a model whose `compile` arguments travel in its
`.keras` file, so `keras.saving.load_model` gives it back compiled.

Keras restores a model's compile state through `get_compile_config` /
`compile_from_config`; its default keeps only the arguments of
`keras.Model.compile`. `MutualLearner` and `AdversarialTrainer` take their
own `loss` and `metrics`, so they remember what they were given.

Example:

```python
class Cohort(RecompilesFromConfig, keras.Model):
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        ...
        self.remember_compile_args(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
```
"""

import keras


class RecompilesFromConfig:
    """Mixin for a `keras.Model` whose `compile` takes arguments of its own."""

    def remember_compile_args(self, **args):
        """Keep `compile`'s arguments, as given, for `get_compile_config`."""
        self._compile_args = args

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            key: keras.saving.serialize_keras_object(value)
            for key, value in getattr(self, "_compile_args", {}).items()
        }

    def compile_from_config(self, config):
        config = dict(config)
        optimizer = config.pop("optimizer", None)
        config = {
            key: keras.saving.deserialize_keras_object(value) for key, value in config.items()
        }
        if isinstance(optimizer, dict):
            # Keras names a built-in optimizer by its backend's own class
            # (`keras.src.backend.torch.optimizers.torch_adam` on PyTorch);
            # `keras.optimizers.deserialize` maps it to this backend's.
            optimizer = keras.optimizers.deserialize(optimizer)
        if optimizer is not None:
            config["optimizer"] = optimizer
        self.compile(**config)  # builds the optimizer of a built model
