"""The config's `divergence` section: which divergence, its order α and
schedules, and the decoupled/improved KL's own keys. Validating imports no
Keras; `rdml_keras.experiments.divergence` turns the section into a loss.

>>> DivergenceConfig(kind="ikl", ikl_weighting="sample").ikl_weighting
'sample'
"""

from pydantic import Field

from rdml_keras.choices import IKL_STATISTICS
from rdml_keras.choices import IKL_WEIGHTINGS
from rdml_keras.choices import UPDATE_ORDERS
from rdml_keras.experiments.config.errors import ConfigError
from rdml_keras.experiments.config.errors import fail
from rdml_keras.experiments.config.section import Section
from rdml_keras.experiments.config.values import ALPHA_SCHEDULES
from rdml_keras.experiments.config.values import DIVERGENCE_KINDS
from rdml_keras.experiments.config.values import choice
from rdml_keras.experiments.config.values import integer
from rdml_keras.experiments.config.values import number
from rdml_keras.experiments.config.values import optional

DECOUPLED_KEYS = (
    "mse_weight",
    "ce_weight",
    "ikl_weighting",
    "ikl_statistic",
    "ikl_weight_temperature",
    "ikl_momentum",
)
"""The keys of `kind: dkl` and `kind: ikl` (null: the loss's default)."""


class DivergenceConfig(Section):
    """The mimicry term: which divergence, its order α and its schedules.

    >>> DivergenceConfig(kind="kl", alpha=None).kind
    'kl'
    """

    kind: choice(DIVERGENCE_KINDS) = Field(
        "renyi",
        description="renyi = RDML, kl = DML, dkl/ikl = decoupled/improved KL, "
        "none = independent training",
    )
    alpha: optional(number(ge=0.0)) = Field(
        None, description="Rényi order α (kind renyi, schedule constant; required there)"
    )
    temperature: number(gt=0.0) = Field(
        1.0, description="softmax temperature T (divergence scaled by T²)"
    )
    weight: number(ge=0.0) = Field(1.0, description="λ, weight of the mimicry term")
    update: choice(UPDATE_ORDERS) = Field(
        "simultaneous", description="simultaneous (one backward pass) or sequential (DML Alg. 1)"
    )
    schedule: choice(ALPHA_SCHEDULES) = Field(
        "constant", description="α schedule (cosine: alpha_max → alpha_min over the epochs)"
    )
    alpha_min: optional(number(ge=0.0)) = Field(None, description="final α of the cosine schedule")
    alpha_max: optional(number(ge=0.0)) = Field(
        None, description="initial α of the cosine schedule"
    )
    weight_warmup_epochs: integer(0) = Field(0, description="epochs of linear warm-up of λ from 0")
    mse_weight: optional(number(ge=0.0)) = Field(
        None,
        description="dkl/ikl: weight of the weighted-MSE term on logit differences (the "
        "paper's α) (null: 1)",
    )
    ce_weight: optional(number(ge=0.0)) = Field(
        None, description="dkl/ikl: weight of the soft cross-entropy term (the paper's β) (null: 1)"
    )
    ikl_weighting: optional(choice(IKL_WEIGHTINGS)) = Field(
        None,
        description="ikl: class (the paper's per-class weights) or sample (the official "
        "code's GI=False) (null: class)",
    )
    ikl_statistic: optional(choice(IKL_STATISTICS)) = Field(
        None,
        description="ikl, class weighting: epoch (the previous epoch's class means, as the "
        "official trainer keeps them) or ema (a running mean) (null: epoch)",
    )
    ikl_weight_temperature: optional(number(gt=0.0)) = Field(
        None,
        description="ikl: T2, temperature of the weights' softmax (null: 100, the official T2)",
    )
    ikl_momentum: optional(number(ge=0.0, lt=1.0)) = Field(
        None, description="ikl, statistic ema: momentum of the running class means (null: 0.9)"
    )

    def check(self):
        self._check_decoupled()
        if self.kind != "renyi":
            for key in ("alpha", "alpha_min", "alpha_max"):
                if getattr(self, key) is not None:
                    fail(
                        f"divergence.{key}",
                        getattr(self, key),
                        f"null when divergence.kind is {self.kind!r} (α is for renyi)",
                    )
            if self.schedule != "constant":
                fail(
                    "divergence.schedule",
                    self.schedule,
                    f"constant when divergence.kind is {self.kind!r}",
                )
            return
        if self.schedule == "constant":
            if self.alpha is None:
                raise ConfigError(
                    "divergence.alpha: missing; expected a finite number >= 0 "
                    "when divergence.kind is renyi (1 = KL/DML, 0 = independent)",
                    path="divergence.alpha",
                )
            for key in ("alpha_min", "alpha_max"):
                if getattr(self, key) is not None:
                    fail(
                        f"divergence.{key}",
                        getattr(self, key),
                        "null unless divergence.schedule is cosine",
                    )
            return
        if self.alpha is not None:
            fail(
                "divergence.alpha",
                self.alpha,
                "null when divergence.schedule is cosine (set alpha_max and alpha_min)",
            )
        for key in ("alpha_max", "alpha_min"):
            if getattr(self, key) is None:
                raise ConfigError(
                    f"divergence.{key}: missing; expected a finite number >= 0 "
                    "when divergence.schedule is cosine",
                    path=f"divergence.{key}",
                )

    def _check_decoupled(self):
        """The dkl/ikl keys: null for the other kinds, and IKL's keys that
        fit together (a statistic for class weights, a momentum for ema)."""
        for key in DECOUPLED_KEYS:
            value = getattr(self, key)
            owners = ("dkl", "ikl") if key in ("mse_weight", "ce_weight") else ("ikl",)
            if value is not None and self.kind not in owners:
                fail(
                    f"divergence.{key}",
                    value,
                    f"null when divergence.kind is {self.kind!r} ({key} is for "
                    f"{' and '.join(owners)})",
                )
        if self.ikl_weighting == "sample" and self.ikl_statistic is not None:
            fail(
                "divergence.ikl_statistic",
                self.ikl_statistic,
                "null when divergence.ikl_weighting is sample (per-sample weights keep "
                "no class statistic)",
            )
        if self.ikl_momentum is not None and self.ikl_statistic != "ema":
            fail(
                "divergence.ikl_momentum",
                self.ikl_momentum,
                "null unless divergence.ikl_statistic is ema",
            )

    def describe_alpha(self) -> str:
        """α as a short label for tables: `2`, `cos 2→0.5`, or `-`.

        >>> DivergenceConfig(alpha=2.0).describe_alpha()
        '2'
        """
        if self.kind != "renyi":
            return "-"
        if self.schedule == "cosine":
            return f"cos {self.alpha_max:g}→{self.alpha_min:g}"
        return f"{self.alpha:g}"
