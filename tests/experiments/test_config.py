"""Config loading, validation messages, overrides, shipped YAMLs, lr schedules."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from rdml_keras.experiments.config import ConfigError
from rdml_keras.experiments.config import ExperimentConfig
from rdml_keras.experiments.config import apply_overrides
from rdml_keras.experiments.config import config_from_yaml_text
from rdml_keras.experiments.config import load_config
from rdml_keras.experiments.config import schema_rows

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
QUICKSTART = CONFIGS / "quickstart.yaml"
SHIPPED = sorted(CONFIGS.rglob("*.yaml"))

BASE = {
    "dataset": {"name": "digits"},
    "peers": ["small_cnn", "small_cnn"],
    "divergence": {"kind": "renyi", "alpha": 2.0},
    "epochs": 2,
}


def write(tmp_path, raw, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


def error_of(tmp_path, overrides, raw=None):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, raw or BASE), overrides)
    return str(info.value)


# ---------------------------------------------------------------- shipped files


def test_shipped_configs_exist():
    names = {p.relative_to(CONFIGS).as_posix() for p in SHIPPED}
    assert "quickstart.yaml" in names
    for cohort in ("resnet32", "mobilenetv2", "wrn_28_10", "resnet32_vs_mobilenetv2"):
        for method in ("independent", "dml", "rdml_a0.5", "rdml_a1.5", "rdml_a2"):
            assert f"cifar100/{cohort}_{method}.yaml" in names
    for method in ("independent", "dml", "rdml_a0.5", "rdml_a1.5", "rdml_a2"):
        assert f"cifar10/resnet32_{method}.yaml" in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_config_loads_and_round_trips(path):
    config = load_config(path)
    assert config_from_yaml_text(config.to_yaml()) == config


@pytest.mark.parametrize(
    "path",
    [p for p in SHIPPED if p.parent.name.startswith("cifar")],
    ids=lambda p: p.relative_to(CONFIGS).as_posix(),
)
def test_paper_grid_follows_dml_schedule(path):
    config = load_config(path)
    opt = config.optimizer
    assert config.dataset.name == path.parent.name
    assert (opt.name, opt.learning_rate, opt.momentum, opt.nesterov) == ("sgd", 0.1, 0.9, True)
    assert opt.weight_decay == pytest.approx(5e-4)
    assert (opt.schedule, opt.milestones) == ("multistep", (60, 120, 180))
    assert (config.epochs, config.batch_size) == (200, 64)
    assert config.dataset.augment == "standard"
    method = path.stem.split("_")[-1] if "rdml" not in path.stem else "rdml"
    # One schedule per comparison (design page §4): every method decays by 0.1.
    expected = {"independent": ("none", 0.1), "dml": ("kl", 0.1), "rdml": ("renyi", 0.1)}
    assert (config.divergence.kind, opt.gamma) == expected[method]
    if method == "rdml":
        assert f"_a{config.divergence.alpha:g}" in path.stem
    # Distinct names: the default run directory is runs/<name>.
    assert config.name == f"{path.parent.name}_{path.stem}"


def test_grid_files_match_generator():
    spec = importlib.util.spec_from_file_location("make_grid", ROOT / "tools" / "make_grid.py")
    make_grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_grid)
    for path in SHIPPED:
        if path.parent.name.startswith("cifar"):
            cohort, method = path.stem.split("_rdml")[0], None
            for m in make_grid.METHODS:
                if path.stem.endswith("_" + m):
                    cohort, method = path.stem[: -len(m) - 1], m
            assert path.read_text() == make_grid.render(path.parent.name, cohort, method)


def test_quickstart_is_offline_rdml():
    config = load_config(QUICKSTART)
    assert config.dataset.name == "mnist_sample"
    assert [p.architecture for p in config.peers] == ["small_cnn", "small_cnn"]
    assert (config.divergence.kind, config.divergence.alpha) == ("renyi", 2.0)
    assert config.name == "quickstart"


# ---------------------------------------------------------------- validation

BAD_VALUES = [
    # (override, key path, value as shown, part of "what is allowed")
    ("divergence.alpha=-1", "divergence.alpha", "-1", "finite number >= 0"),
    ("divergence.alpha=.nan", "divergence.alpha", "nan", "finite number >= 0"),
    ("divergence.alpha=two", "divergence.alpha", "'two'", "finite number"),
    ("divergence.temperature=0", "divergence.temperature", "0", "> 0"),
    ("divergence.weight=-0.5", "divergence.weight", "-0.5", ">= 0"),
    ("divergence.kind=js", "divergence.kind", "'js'", "renyi, kl, dkl, ikl, none"),
    ("divergence.update=parallel", "divergence.update", "'parallel'", "simultaneous"),
    ("divergence.schedule=linear", "divergence.schedule", "'linear'", "constant, cosine"),
    ("divergence.weight_warmup_epochs=-1", "divergence.weight_warmup_epochs", "-1", ">= 0"),
    ("batch_size=0", "batch_size", "0", "an integer >= 1"),
    ("epochs=0", "epochs", "0", "an integer >= 1"),
    ("epochs=1.5", "epochs", "1.5", "an integer >= 1"),
    ("epochs=true", "epochs", "True", "an integer >= 1"),
    ("precision=float64", "precision", "'float64'", "float32, mixed_float16, mixed_bfloat16"),
    ("jit_compile=maybe", "jit_compile", "'maybe'", '"auto"'),
    ("seed=-3", "seed", "-3", "an integer in [0, 2**32)"),
    # NumPy's seeds are 32-bit: a larger one used to fail after config.yaml was written.
    ("seed=4294967296", "seed", "4294967296", "an integer in [0, 2**32)"),
    ("seeds=[1, 1]", "seeds", "[1, 1]", "distinct integers"),
    ("seeds=[0, 4294967296]", "seeds", "[0, 4294967296]", "integers in [0, 2**32)"),
    # Finite in float64, inf in float32: training would see inf, then NaN.
    ("divergence.alpha=1.0e+308", "divergence.alpha", "1e+308", "that float32 holds"),
    ("divergence.weight=-1.0e+39", "divergence.weight", "-1e+39", ">= 0"),
    ("divergence.temperature=1.0e+39", "divergence.temperature", "1e+39", "that float32 holds"),
    ("optimizer.learning_rate=1.0e+300", "optimizer.learning_rate", "1e+300", "float32"),
    # A run's name is its directory under runs/: one safe path component.
    ("name=../../escaped", "name", "'../../escaped'", "one directory name"),
    ("name=/tmp/x", "name", "'/tmp/x'", "no '/'"),
    ("name=..", "name", "'..'", "not '.' or '..'"),
    ("name=" + "n" * 129, "name", "'nnnnnnnn", "1-128 letters"),
    ("steps_per_execution=0", "steps_per_execution", "0", ">= 1"),
    ("histogram_freq=-1", "histogram_freq", "-1", ">= 0"),
    ("optimizer.name=rmsprop", "optimizer.name", "'rmsprop'", "sgd, adam, adamw"),
    ("optimizer.learning_rate=0", "optimizer.learning_rate", "0", "> 0"),
    ("optimizer.learning_rate=.inf", "optimizer.learning_rate", "inf", "finite"),
    ("optimizer.momentum=1.0", "optimizer.momentum", "1.0", "< 1"),
    ("optimizer.nesterov=yes please", "optimizer.nesterov", "'yes please'", "true or false"),
    (
        "optimizer.schedule=linear",
        "optimizer.schedule",
        "'linear'",
        "constant, step, multistep, cosine",
    ),
    ("optimizer.milestones=[120, 60]", "optimizer.milestones", "[120, 60]", "increasing"),
    ("optimizer.gamma=0", "optimizer.gamma", "0", "> 0"),
    ("optimizer.warmup_epochs=-1", "optimizer.warmup_epochs", "-1", ">= 0"),
    ("dataset.name=imagenet", "dataset.name", "'imagenet'", "mnist_sample"),
    ("dataset.train_size=0", "dataset.train_size", "0", "null or an integer >= 1"),
    ("dataset.download=1", "dataset.download", "1", "true or false"),
    ("peers.0.architecture=resnet33", "peers.0.architecture", "'resnet33'", "resnet32"),
    ("peers.1.architecture=wrn_27_10", "peers.1.architecture", "'wrn_27_10'", "6n+4"),
    ("peers.0.name=a/b", "peers.0.name", "'a/b'", "letters, digits"),
    ("peers=[small_cnn]", "peers", "['small_cnn']", "at least 2 peers"),
    ("peers=small_cnn", "peers", "'small_cnn'", "at least 2 peers"),
]


@pytest.mark.parametrize("override,key,shown,allowed", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_names_key_value_and_allowed(tmp_path, override, key, shown, allowed):
    message = error_of(tmp_path, [override])
    assert message.startswith("--set: "), message
    assert f"{key}: got {shown}" in message, message
    assert allowed in message, message


def test_bad_value_in_file_names_the_file(tmp_path):
    message = error_of(tmp_path, [], {**BASE, "batch_size": -8})
    assert message.startswith(str(tmp_path / "exp.yaml") + ": batch_size: got -8")
    assert "an integer >= 1" in message


def test_unknown_key_in_file(tmp_path):
    message = error_of(tmp_path, [], {**BASE, "optimzer": {"name": "sgd"}})
    assert "optimzer: unknown key (value {'name': 'sgd'})" in message
    assert "optimizer" in message and "did you mean 'optimizer'?" in message


def test_unknown_nested_key_in_file(tmp_path):
    raw = {**BASE, "divergence": {"kind": "renyi", "alpah": 2}}
    message = error_of(tmp_path, [], raw)
    assert "divergence.alpah: unknown key (value 2)" in message
    assert "did you mean 'alpha'?" in message


@pytest.mark.parametrize(
    "override,expected",
    [
        ("divergence.alpah=2", "unknown key 'divergence.alpah'"),
        ("epochz=2", "unknown key 'epochz'"),
        ("optimizer.lr=0.1", "unknown key 'optimizer.lr'"),
        ("epochs.value=3", "unknown key 'epochs.value'"),
        ("peers.5.architecture=mlp", "peer index '5'; expected 0..1"),
        ("peers.0.depth=3", "unknown key 'peers.0.depth'"),
        ("epochs", "expected KEY=VALUE"),
        ("=3", "dotted key"),
    ],
)
def test_unknown_override_key_is_an_error(tmp_path, override, expected):
    message = error_of(tmp_path, [override])
    assert expected in message, message
    assert override in message, message


def test_override_suggests_close_key(tmp_path):
    assert "did you mean 'divergence.alpha'?" in error_of(tmp_path, ["divergence.alpah=2"])


@pytest.mark.parametrize(
    "raw,key,expected",
    [
        (
            {**BASE, "divergence": {"kind": "kl", "alpha": 2}},
            "divergence.alpha",
            "null when divergence.kind is 'kl'",
        ),
        (
            {**BASE, "divergence": {"kind": "renyi", "schedule": "cosine", "alpha_max": 2}},
            "divergence.alpha_min",
            "missing",
        ),
        (
            {
                **BASE,
                "divergence": {
                    "kind": "renyi",
                    "schedule": "cosine",
                    "alpha": 2,
                    "alpha_max": 2,
                    "alpha_min": 1,
                },
            },
            "divergence.alpha",
            "null when divergence.schedule is cosine",
        ),
        (
            {**BASE, "divergence": {"kind": "kl", "schedule": "cosine"}},
            "divergence.schedule",
            "constant when divergence.kind is 'kl'",
        ),
        (
            {**BASE, "divergence": {"kind": "kl", "mse_weight": 2}},
            "divergence.mse_weight",
            "null when divergence.kind is 'kl' (mse_weight is for dkl and ikl)",
        ),
        (
            {**BASE, "divergence": {"kind": "dkl", "ikl_weighting": "sample"}},
            "divergence.ikl_weighting",
            "null when divergence.kind is 'dkl' (ikl_weighting is for ikl)",
        ),
        (
            {**BASE, "divergence": {"kind": "ikl", "ikl_weighting": "batch"}},
            "divergence.ikl_weighting",
            "null or one of class, sample",
        ),
        (
            {
                **BASE,
                "divergence": {"kind": "ikl", "ikl_weighting": "sample", "ikl_statistic": "ema"},
            },
            "divergence.ikl_statistic",
            "null when divergence.ikl_weighting is sample",
        ),
        (
            {**BASE, "divergence": {"kind": "ikl", "ikl_momentum": 0.5}},
            "divergence.ikl_momentum",
            "null unless divergence.ikl_statistic is ema",
        ),
        (
            {**BASE, "divergence": {"kind": "ikl", "ikl_statistic": "ema", "ikl_momentum": 1}},
            "divergence.ikl_momentum",
            "< 1",
        ),
        (
            {**BASE, "optimizer": {"schedule": "multistep"}},
            "optimizer.milestones",
            "non-empty list",
        ),
        ({**BASE, "optimizer": {"schedule": "step"}}, "optimizer.step_epochs", "missing"),
        (
            {
                **BASE,
                "peers": [
                    {"architecture": "mlp", "name": "a"},
                    {"architecture": "small_cnn", "name": "a"},
                ],
            },
            "peers.1.name",
            "not already used by peers.0",
        ),
        ({**BASE, "peers": [{"arch": "mlp"}, "mlp"]}, "peers.0.arch", "unknown key"),
        ({k: v for k, v in BASE.items() if k != "peers"}, "peers", "missing"),
        ({k: v for k, v in BASE.items() if k != "dataset"}, "dataset.name", "missing"),
    ],
)
def test_cross_field_rules(tmp_path, raw, key, expected):
    message = error_of(tmp_path, [], raw)
    assert f"{key}: " in message and expected in message, message


@pytest.mark.parametrize(
    "divergence", [{"kind": "renyi"}, {"kind": "renyi", "alpha": None}, None], ids=str
)
def test_renyi_without_alpha_gets_the_library_default(divergence):
    from rdml_keras import losses

    raw = {k: v for k, v in BASE.items() if k != "divergence"}
    if divergence is not None:
        raw["divergence"] = divergence
    config = ExperimentConfig.from_dict(raw)
    library = float(losses.get("renyi").alpha.numpy())  # MutualLearner(divergence="renyi")
    assert config.divergence.alpha == library == 1.0  # KL
    # The resolved config (written into a run directory) states it.
    assert config_from_yaml_text(config.to_yaml()).divergence.alpha == 1.0


@pytest.mark.parametrize(
    "divergence,key,offers,accepted,resolved",
    [
        ({"kind": "kl", "alpha": -1}, "alpha", {"null"}, None, None),
        ({"kind": "renyi", "alpha": -1}, "alpha", {"null", "number"}, None, 1.0),
        ({"kind": "renyi", "alpha": -1}, "alpha", {"null", "number"}, 0.5, 0.5),
        ({"kind": "renyi", "schedule": "cosine", "alpha": -1}, "alpha", {"null"}, None, None),
        ({"kind": "renyi", "schedule": "cosine", "alpha_max": -1}, "alpha_max", {"number"}, 3, 3),
        ({"kind": "renyi", "alpha_min": -1}, "alpha_min", {"null"}, None, None),
    ],
    ids=str,
)
def test_bad_alpha_messages_offer_only_accepted_values(
    tmp_path, divergence, key, offers, accepted, resolved
):
    """A message offers null only where null is accepted, a number only where one
    is; a value it offers (`accepted`) then passes."""
    cosine = {"alpha_max": 2.0, "alpha_min": 0.5} if "schedule" in divergence else {}
    raw = {**BASE, "divergence": {**cosine, **divergence}}
    message = error_of(tmp_path, [], raw)
    assert f"divergence.{key}: got -1; expected " in message, message
    allowed = message.split("; expected ", 1)[1]
    found = {word for word, text in (("null", "null"), ("number", "number")) if text in allowed}
    assert found == offers, message
    fixed = ExperimentConfig.from_dict({**raw, "divergence": {**raw["divergence"], key: accepted}})
    assert getattr(fixed.divergence, key) == resolved


@pytest.mark.parametrize(
    "text,expected",
    [
        ("[1, 2", "not valid YAML"),
        ("- a\n- b\n", "got a list at the top level"),
    ],
)
def test_malformed_files(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found: nope.yaml"):
        load_config("nope.yaml")


# ---------------------------------------------------------------- hostile YAML


def config_error_in_child(path, overrides=(), timeout=30):
    """`load_config`'s ConfigError message, from a child process killed after
    `timeout` seconds: an unbounded document hangs in C code (a repr, a
    copy), where no signal handler of the test could stop it."""
    code = (
        "import sys\n"
        "from rdml_keras.experiments.config import ConfigError, load_config\n"
        "try:\n"
        "    load_config(sys.argv[1], sys.argv[2:])\n"
        "except ConfigError as e:\n"
        "    print(e, end='')\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path), *overrides],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_config did not finish in {timeout} s")
    assert proc.returncode == 0 and proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def alias_bomb(levels=10, width=10):
    """A flow mapping whose last key expands to width**levels scalars."""
    items = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        items.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "{" + ", ".join(items) + "}"


def test_alias_bomb_in_a_file_is_refused_at_once(tmp_path):
    text = yaml.safe_dump(BASE) + f"bomb: {alias_bomb()}\nepochs: *a9\n"
    assert len(text) < 1000  # 10**10 values once expanded
    message = config_error_in_child(write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'exp.yaml'}: not valid YAML: ")
    assert "expands to more than 100000 values" in message


@pytest.mark.parametrize(
    "value,expected",
    [
        (alias_bomb(), "expands to more than 100000 values"),
        ("&a [x, *a]", "an alias refers to the node that contains it"),
        ("[" * 3000 + "]" * 3000, "nested more than 50 levels deep"),
    ],
    ids=["bomb", "self-reference", "deep"],
)
def test_hostile_set_value_is_refused_in_one_short_line(tmp_path, value, expected):
    message = config_error_in_child(write(tmp_path, BASE), [f"epochs={value}"])
    assert message.startswith("--set epochs: value ") and expected in message, message
    assert "\n" not in message and len(message) < 300, message


def test_expanded_aliases_within_the_bound_still_load(tmp_path):
    """Anchors and aliases are ordinary YAML: a config may use them."""
    rest = {k: v for k, v in BASE.items() if k != "peers"}
    text = "peers: [&m mlp, *m]\n" + yaml.safe_dump(rest)
    assert [p.architecture for p in load_config(write(tmp_path, text)).peers] == ["mlp", "mlp"]
    bomb = yaml.safe_dump(BASE) + f"bomb: {alias_bomb(levels=4)}\n"  # 11,111 nodes expanded
    with pytest.raises(ConfigError, match="bomb: unknown key"):
        load_config(write(tmp_path, bomb))


@pytest.mark.parametrize(
    "override",
    [
        "name=" + "n" * 10**6,
        "epochs=" + "x" * 10**6,
        "epochs=[" + "1, " * 10**4 + "]",
        "k" * 10**6 + "=1",
        "epochs.sub=" + "x" * 10**6,
    ],
    ids=["huge-name", "huge-string", "long-list", "huge-key", "huge-unknown-key-value"],
)
def test_messages_never_render_a_value_whole(tmp_path, override):
    message = error_of(tmp_path, [override])
    assert len(message) < 600, message[:700]  # the value was a megabyte


# ---------------------------------------------------------------- overrides


def test_overrides_are_typed_yaml(tmp_path):
    config = load_config(
        write(tmp_path, BASE),
        [
            "epochs=7",
            "divergence.alpha=0.5",
            "optimizer.weight_decay=5e-4",
            "optimizer.schedule=multistep",
            "optimizer.milestones=[2, 4]",
            "dataset.train_size=100",
            "jit_compile=false",
            "peers.1.name=second",
        ],
    )
    assert config.epochs == 7 and config.divergence.alpha == 0.5
    # `5e-4` is a string to YAML 1.1; it is still accepted as the number.
    assert config.optimizer.weight_decay == pytest.approx(5e-4)
    assert config.optimizer.milestones == (2, 4)
    assert config.dataset.train_size == 100 and config.jit_compile is False
    assert [p.name for p in config.peers] == ["small_cnn", "second"]


def test_overrides_replace_cohort_and_section(tmp_path):
    config = load_config(
        write(tmp_path, BASE),
        ["peers=[mlp, small_cnn, mlp]", "divergence={kind: kl}", "dataset=mnist_sample"],
    )
    assert [p.name for p in config.peers] == ["mlp_0", "small_cnn", "mlp_2"]
    assert config.divergence.kind == "kl" and config.divergence.alpha is None
    assert config.dataset.name == "mnist_sample"


def test_override_null_switches_kind(tmp_path):
    config = load_config(write(tmp_path, BASE), ["divergence.kind=kl", "divergence.alpha=null"])
    assert config.divergence.kind == "kl"


def test_apply_overrides_does_not_mutate_input():
    raw = {"peers": ["mlp", "mlp"], "epochs": 3}
    new, touched = apply_overrides(raw, ["peers.0.name=x", "epochs=1"])
    assert raw == {"peers": ["mlp", "mlp"], "epochs": 3}
    assert new["peers"][0] == {"architecture": "mlp", "name": "x"}
    assert touched == {"peers.0.name", "epochs"}


def test_defaults_and_names(tmp_path):
    config = load_config(write(tmp_path, BASE, name="my_exp.yaml"))
    assert config.name == "my_exp"
    assert config.optimizer.name == "sgd" and config.optimizer.nesterov is True
    assert (config.batch_size, config.precision, config.jit_compile) == (64, "float32", "auto")
    assert config.seeds is None and config.seed == 0
    assert config.to_dict()["peers"][0] == {"architecture": "small_cnn", "name": "small_cnn_0"}


def test_architecture_spelling_is_canonical(tmp_path):
    raw = {**BASE, "dataset": {"name": "cifar10"}, "peers": ["WRN-16-4", "wrn_16_4"]}
    config = load_config(write(tmp_path, raw))
    assert [p.architecture for p in config.peers] == ["wrn_16_4", "wrn_16_4"]


def test_cosine_alpha_and_for_seed():
    config = ExperimentConfig.from_dict(
        {
            **BASE,
            "seeds": [3, 4],
            "divergence": {"kind": "renyi", "schedule": "cosine", "alpha_max": 2, "alpha_min": 0.5},
        }
    )
    assert config.divergence.describe_alpha() == "cos 2→0.5"
    single = config.for_seed(4)
    assert (single.seed, single.seeds) == (4, None)


def test_schema_rows_cover_every_key():
    keys = {row[0] for row in schema_rows()}
    for key in (
        "dataset.name",
        "peers",
        "peers[k].architecture",
        "peers[k].name",
        "divergence.kind",
        "divergence.alpha",
        "divergence.alpha_min",
        "optimizer.milestones",
        "optimizer.warmup_epochs",
        "epochs",
        "batch_size",
        "precision",
        "jit_compile",
        "seed",
        "seeds",
        "validation_freq",
        "histogram_freq",
    ):
        assert key in keys
    assert all(row[2] for row in schema_rows())


# ---------------------------------------------------------------- the schema


def _schema_validator():
    import jsonschema

    from rdml_keras.experiments.config import json_schema

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_configs_follow_the_json_schema(path):
    errors = list(_schema_validator().iter_errors(yaml.safe_load(path.read_text())))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize(
    "change",
    [
        {"epochs": 0},
        {"optimzer": {}},
        {"divergence": {"kind": "js"}},
        {"divergence": {"alpah": 2}},
        {"peers": ["small_cnn"]},
        {"batch_size": 1.5},
        {"optimizer": {"momentum": 1.0}},
        {"distribution": {"strategy": "everywhere"}},
        {"dataset": {"name": "imagenet"}},
    ],
)
def test_the_json_schema_refuses_what_load_config_refuses(tmp_path, change):
    raw = {**BASE, **change}
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, raw))
    assert list(_schema_validator().iter_errors(raw)), change


def test_schema_command_prints_the_json_schema(capsys):
    import json

    from rdml_keras.experiments.cli import main
    from rdml_keras.experiments.config import json_schema

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_importing_the_config_loads_no_keras_tensorflow_or_jax():
    code = (
        "import sys, rdml_keras.experiments.config\n"
        "print([m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_every_divergence_and_update_order_the_config_accepts_the_library_builds():
    # One spelling (rdml_keras.choices, no Keras) for the config and the library.
    import keras

    from rdml_keras import losses
    from rdml_keras.experiments import config
    from rdml_keras.learner import MutualLearner

    for name in config.DIVERGENCES:
        assert isinstance(losses.get(name, num_classes=3), keras.losses.Loss), name
    peer = lambda: keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    for update in config.UPDATE_ORDERS:
        assert MutualLearner([peer(), peer()], update=update).update == update
    for weighting in config.IKL_WEIGHTINGS:
        for statistic in config.IKL_STATISTICS:
            loss = losses.ImprovedKL(num_classes=3, weighting=weighting, statistic=statistic)
            assert (loss.weighting, loss.statistic) == (weighting, statistic)
