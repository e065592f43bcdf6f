"""The config's `divergence` section as what `MutualLearner` takes.

`kind: renyi` and `kind: kl` stay names (the learner builds them, α from the
section); `dkl` and `ikl` become loss instances carrying their own keys
(`mse_weight`, `ce_weight`, the `ikl_*` keys), each null key at the loss's
default; `none` is no divergence.

>>> from rdml_keras.experiments.config import DivergenceConfig
>>> build_divergence(DivergenceConfig(kind="ikl", ikl_weighting="sample"), 10).weighting
'sample'
"""

from rdml_keras import losses


def build_divergence(div, num_classes: int):
    """`divergence=` for `MutualLearner`: None, a divergence name, or a loss."""
    if div.kind == "none":
        return None
    if div.kind not in ("dkl", "ikl"):
        return div.kind
    weights = {
        arg: value
        for arg, value in (("mse_weight", div.mse_weight), ("ce_weight", div.ce_weight))
        if value is not None
    }
    if div.kind == "dkl":
        return losses.DecoupledKL(temperature=div.temperature, **weights)
    ikl = {
        "weighting": div.ikl_weighting,
        "statistic": div.ikl_statistic,
        "weight_temperature": div.ikl_weight_temperature,
        "momentum": div.ikl_momentum,
    }
    return losses.ImprovedKL(
        num_classes,
        temperature=div.temperature,
        **weights,
        **{arg: value for arg, value in ikl.items() if value is not None},
    )
