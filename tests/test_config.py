import pytest

from macrodyn.config import default_config_path, load_config, parse_config
from macrodyn.errors import InputError


def test_default_config_is_valid_and_embedded():
    cfg = load_config(default_config_path())
    assert cfg.system.name == "predator_prey"
    assert cfg.training.loss == "L_xp" and cfg.training.p == pytest.approx(0.2)
    assert cfg.training.budget == 150_000


def test_unknown_field_is_named():
    with pytest.raises(InputError, match=r"training\.lrr: unknown field"):
        parse_config({"training": {"lrr": 1.0}})


def test_invalid_values_are_named():
    with pytest.raises(InputError, match=r"training\.p"):
        parse_config({"training": {"p": 1.5}})
    with pytest.raises(InputError, match=r"training\.budget"):
        parse_config({"training": {"budget": -3}})
    with pytest.raises(InputError, match="set p: 1"):
        parse_config({"training": {"loss": "L_z", "p": 0.5}})
    with pytest.raises(InputError, match="multiple of save_every"):
        parse_config({"data": {"n_steps": 105, "save_every": 10}})


def test_system_params_checked_per_system():
    with pytest.raises(InputError, match=r"system.*unknown field|Extra inputs"):
        parse_config({"system": {"name": "predator_prey", "params": {"nn": 3}}})
    with pytest.raises(InputError, match="unknown system"):
        parse_config({"system": {"name": "navier_stokes"}})


def test_bad_yaml_and_missing_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "none.yaml")
    p.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="mapping"):
        load_config(p)
