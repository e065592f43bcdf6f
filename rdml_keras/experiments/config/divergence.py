"""The config's `divergence` section: which divergence, its order α and
schedules, and the decoupled/improved KL's own keys. Validating imports no
Keras; `rdml_keras.experiments.divergence` turns the section into a loss.

>>> DivergenceConfig(kind="ikl", ikl_weighting="sample").ikl_weighting
'sample'
"""

from pydantic import Field
from pydantic import model_validator

from rdml_keras.checks import DEFAULT_ALPHA
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

_ALPHA_KEYS = ("alpha", "alpha_min", "alpha_max")


def _alpha_rule(key, kind, schedule):
    """(whether α's `key` needs a number, the words for what it accepts) for a
    section of this `kind` and `schedule`: one rule for the checks between keys
    and the type errors, so a message never offers a value the rule refuses."""
    if kind != "renyi":
        return False, f"null when divergence.kind is {kind!r} (α is for renyi)"
    if key == "alpha":
        if schedule == "constant":
            return True, f"null or a finite number >= 0 (null: {DEFAULT_ALPHA:g}, KL)"
        return False, "null when divergence.schedule is cosine (set alpha_max and alpha_min)"
    if schedule == "cosine":
        return True, "a finite number >= 0 when divergence.schedule is cosine"
    return False, "null unless divergence.schedule is cosine"


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
        None,
        description="Rényi order α (kind renyi, schedule constant; null there: "
        f"{DEFAULT_ALPHA:g}, the library's default)",
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

    @model_validator(mode="before")
    @classmethod
    def _default_alpha(cls, data):
        # `{kind: renyi}` without α gets the library's default, as
        # `MutualLearner(divergence="renyi")` does; the resolved config records it.
        if (
            isinstance(data, dict)
            and data.get("kind", "renyi") == "renyi"
            and data.get("schedule", "constant") == "constant"
            and data.get("alpha") is None
        ):
            return {**data, "alpha": DEFAULT_ALPHA}
        return data

    @classmethod
    def allowed_in_context(cls, key, section) -> str | None:
        """What `key` accepts beside the section's other keys as written (`section`,
        the raw mapping), for its type errors: α's keys accept a number or null
        depending on `kind` and `schedule`. None where the key's own words apply.

        >>> DivergenceConfig.allowed_in_context("alpha", {"kind": "kl"})
        "null when divergence.kind is 'kl' (α is for renyi)"
        """
        if key not in _ALPHA_KEYS or not isinstance(section, dict):
            return None
        kind, schedule = section.get("kind", "renyi"), section.get("schedule", "constant")
        if kind not in DIVERGENCE_KINDS or schedule not in ALPHA_SCHEDULES:
            return None
        return _alpha_rule(key, kind, schedule)[1]

    def check(self):
        self._check_decoupled()
        for key in ("alpha", "alpha_max", "alpha_min"):
            needed, allowed = _alpha_rule(key, self.kind, self.schedule)
            value = getattr(self, key)
            if needed and value is None:
                raise ConfigError(
                    f"divergence.{key}: missing; expected {allowed}", path=f"divergence.{key}"
                )
            if not needed and value is not None:
                fail(f"divergence.{key}", value, allowed)
        if self.kind != "renyi" and self.schedule != "constant":
            fail(
                "divergence.schedule",
                self.schedule,
                f"constant when divergence.kind is {self.kind!r}",
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
