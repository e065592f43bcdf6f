"""The names that both the library and the config accept, spelled once.

`rdml_keras.losses`, `rdml_keras.learner` and the config schema
(`rdml_keras.experiments.config`) all import them from here; this module
imports no Keras, so validating a config stays light.

Example:

>>> DIVERGENCES, UPDATE_ORDERS
(('renyi', 'kl', 'dkl', 'ikl'), ('simultaneous', 'sequential'))
"""

# `rdml_keras.losses.get` names; each is a divergence class there.
DIVERGENCES = ("renyi", "kl", "dkl", "ikl")
# `ImprovedKL(weighting=...)`: the paper's class-wise weights or per-sample ones.
IKL_WEIGHTINGS = ("class", "sample")
# `ImprovedKL(statistic=...)`: how the class-wise weights are kept.
IKL_STATISTICS = ("epoch", "ema")
# `MutualLearner(update=...)`: the reference RDML code's order, or DML's Algorithm 1.
UPDATE_ORDERS = ("simultaneous", "sequential")
# `MutualLearner(target=...)`: each other peer (DML), or their ensemble (DML_e).
TARGETS = ("peers", "ensemble")
