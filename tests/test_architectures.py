"""rdml_keras/architectures.py: the names build_peer accepts, decided without
Keras, and the Wide ResNet depth rule (depth = 6n + 4, n >= 1)."""

import pytest

from rdml_keras import architectures
from rdml_keras import models


def test_every_fixed_name_has_a_builder_and_resolves_to_itself():
    assert set(architectures.FAMILIES) == set(models._BUILDERS)
    for name in architectures.FAMILIES:
        assert architectures.resolve(name) == (name, None)


@pytest.mark.parametrize("name", ["WRN-28-10", " wrn_28_10 ", "Wrn_28_10"])
def test_case_dashes_and_spaces_are_not_significant(name):
    assert architectures.resolve(name) == ("wrn", (28, 10))


@pytest.mark.parametrize("depth", range(4, 60))
def test_the_wrn_depth_rule(depth):
    valid = depth >= 10 and (depth - 4) % 6 == 0
    assert architectures.is_valid_architecture(f"wrn_{depth}_2") is valid


def test_unknown_names_are_refused_with_the_list_of_names():
    with pytest.raises(ValueError) as error:
        architectures.resolve("resnet33")
    message = str(error.value)
    assert "received architecture='resnet33'" in message
    assert all(repr(name) in message for name in architectures.ARCHITECTURES)
    with pytest.raises(ValueError, match="It has depth=27, width=8"):
        architectures.resolve("wrn_27_8")
    assert not architectures.is_valid_architecture(None)
