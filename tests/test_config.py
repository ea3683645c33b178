from pathlib import Path

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
    with pytest.raises(InputError, match="control: snapshots needs loss: L_xp"):
        parse_config({"training": {"loss": "L_z", "p": 1.0, "control": "snapshots"}})
    with pytest.raises(InputError, match="labelling: on_demand"):
        parse_config({"training": {"control": "snapshots", "labelling": "on_demand"}})
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


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    """Every config in configs/ parses, and the LJ-800 one builds its system with shared microstates."""
    if path.name.startswith("lj_scaling"):  # a study config: every point it makes must be a valid run config
        from macrodyn.study import load_study, point_config

        study = load_study(path)
        for size in study.sizes:
            for loss in (None, *study.losses):
                parse_config(point_config(study, size, loss, 250).model_dump())  # re-validated as written
        return
    cfg = load_config(path)
    if path.name == "lj800.yaml":
        p = cfg.system.params
        assert p["placement_seed"] is not None and p["velocity_seed"] is not None
        assert cfg.training.ema_warmup and cfg.training.select == "rollout"
        assert cfg.training.members >= 5
        assert cfg.parallel.scheduler == "local" and cfg.parallel.worker_threads == 1
