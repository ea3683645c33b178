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


_ROOT = Path(__file__).parents[1]
SHIPPED = sorted([*(_ROOT / "configs").glob("*.yaml"), *(_ROOT / "src" / "macrodyn" / "configs").glob("*.yaml")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
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


def test_scaling_study_variants_differ_in_the_control_alone():
    """The force-budget studies with a control variate compare with the main study's L_z and
    with each other: only training's control settings may differ between them."""
    from macrodyn.study import load_study

    control_fields = {"control", "control_window", "surrogate"}
    dumps = {}
    names = ("lj_scaling_control", "lj_scaling_surrogate", "lj_scaling_surrogate_2sigma")
    for name in names:
        d = load_study(_ROOT / "configs" / f"{name}.yaml").model_dump()
        dumps[name] = {**d, "run": {**d["run"], "training": {k: v for k, v in d["run"]["training"].items()
                                                              if k not in control_fields}}}
    assert all(dumps[name] == dumps["lj_scaling_control"] for name in names)
    for name, cutoff in (("lj_scaling_surrogate", 1.5), ("lj_scaling_surrogate_2sigma", 2.0)):
        sur = load_study(_ROOT / "configs" / f"{name}.yaml").run.training
        assert sur.control == "surrogate" and sur.surrogate.params == {"cutoff": cutoff}


def test_shipped_runs_pass_the_pre_checks():
    """The run configs shipped (repo and package) pass check_before_work as they are."""
    from macrodyn.config import check_before_work

    for path in SHIPPED:
        if not path.name.startswith("lj_scaling"):
            cfg = load_config(path)
            check_before_work(cfg.model_copy(update={"device": "cpu"}))


# ------------------------------------------------------------------ bounds and strict types
@pytest.mark.parametrize("data, field", [
    ({"seed": -1}, "seed"),
    ({"seed": 2**63}, "seed"),
    ({"seed": True}, "seed"),
    ({"threads": 100_000_000}, "threads"),
    ({"data": {"n_steps": 10**12, "save_every": 10}}, "data.n_steps"),
    ({"data": {"n_train_trajectories": 10**9}}, "data.n_train_trajectories"),
    ({"data": {"chunk_trajectories": 10**9}}, "data.chunk_trajectories"),
    ({"data": {"n_steps": 3000.0}}, "data.n_steps"),
    ({"training": {"chunk_configs": 10**9}}, "training.chunk_configs"),
    ({"training": {"epochs": True}}, "training.epochs"),
    ({"training": {"epochs": 10**7}}, "training.epochs"),
    ({"training": {"budget": 10**15}}, "training.budget"),
    ({"training": {"members": 10**4}}, "training.members"),
    ({"training": {"amsgrad": 1}}, "training.amsgrad"),
    ({"training": {"amsgrad": "yes please"}}, "training.amsgrad"),
    ({"training": {"lr": True}}, "training.lr"),
    ({"training": {"lr": 1e3}}, "training.lr"),
    ({"closure": {"epochs": False}}, "closure.epochs"),
    ({"closure": {"hidden": [32, True]}}, "closure.hidden"),
    ({"model": {"hidden": [10**6]}}, "model.hidden"),
    ({"model": {"forcing": "no"}}, "model.forcing"),
    ({"evaluation": {"n_plot": 10**6}}, "evaluation.n_plot"),
    ({"parallel": {"scheduler": "local", "workers": 10**4}}, "parallel"),
])
def test_bounds_and_strict_types(data, field):
    with pytest.raises(InputError) as e:
        parse_config(data)
    msg = str(e.value)
    assert "\n" not in msg and f"{field}" in msg


def test_threads_limit_is_named():
    import os

    limit = 8 * (os.cpu_count() or 1)
    with pytest.raises(InputError, match=f"= {limit} on this machine"):
        parse_config({"threads": limit + 1})
    assert parse_config({"threads": limit}).threads == limit


def test_floats_still_accept_ints_and_yaml_exponents(tmp_path):
    cfg = parse_config({"training": {"lr": 1, "min_lr": 0}, "closure": {"lr": "1e-3"}, "seed": 2**63 - 1})
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float)
    assert cfg.closure.lr == pytest.approx(1e-3) and cfg.seed == 2**63 - 1
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  lr: 1e-3\n  epochs: 10\n")  # YAML 1.1 leaves 1e-3 a string
    assert load_config(p).training.lr == pytest.approx(1e-3)


def test_errors_are_one_line():
    with pytest.raises(InputError) as e:
        parse_config({"training": {"p": 1.5, "budget": -3}, "seed": -1})
    msg = str(e.value)
    assert "\n" not in msg
    assert "training.p:" in msg and "training.budget:" in msg and "seed:" in msg and "(got -3)" in msg


# ------------------------------------------------------------------ YAML
def test_duplicate_keys_refused(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("name: a\ntraining:\n  epochs: 3\n  epochs: 4\n")
    with pytest.raises(InputError, match=r"dup\.yaml line 4.*duplicate key 'epochs' \(first at line 3\)"):
        load_config(p)
    p.write_text("training:\n  epochs: 3\ndata:\n  n_steps: 600\ntraining:\n  budget: 10\n")
    with pytest.raises(InputError, match="duplicate key 'training' \\(first at line 1\\)") as e:
        load_config(p)
    assert "\n" not in str(e.value)
    # a YAML merge key is an intended override, not a duplicate
    from macrodyn.config import read_yaml

    p.write_text("x: &b {epochs: 3, lr: 0.1}\ny:\n  <<: *b\n  epochs: 4\n")
    assert read_yaml(p)["y"] == {"epochs": 4, "lr": 0.1}


def test_empty_config_refused_with_hint(tmp_path):
    p = tmp_path / "empty.yaml"
    for text in ("", "# only a comment\n", "---\n"):
        p.write_text(text)
        with pytest.raises(InputError, match=r"config .*empty\.yaml is empty; give at least `name:` or omit the "
                                             r"argument to run the embedded default"):
            load_config(p)


def test_yaml_syntax_error_is_one_line_with_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: a\ntraining:\n  epochs: [3\n")
    with pytest.raises(InputError, match=r"c\.yaml line \d+, column \d+ is not valid YAML") as e:
        load_config(p)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ check_before_work
TINY = {"data": {"n_train_trajectories": 8, "n_test_trajectories": 4, "n_steps": 600, "save_every": 10},
        "training": {"budget": 4000}}


def test_budget_vs_training_pool():
    from macrodyn.config import check_before_work, training_pool_size

    cfg = parse_config(TINY)
    assert training_pool_size(cfg) == 8 * 61
    check_before_work(cfg)  # predator–prey: 100 units, p = 0.2 → 20 per config, 200 configs ≤ 488
    big = parse_config({**TINY, "training": {"budget": 10**7}})
    with pytest.raises(InputError, match="asks for 500000 configurations.*training pool has 488 snapshots.*raise "
                                         "data.n_train_trajectories or lower training.budget"):
        check_before_work(big)
    with pytest.raises(InputError, match="asks for 500 configurations"):
        check_before_work(parse_config({**TINY, "training": {"budget": 10_000}}), _system(100))
    check_before_work(parse_config({**TINY, "training": {"budget": 10_000}}), _system(1000))  # 50 configs
    # L_z labels every unit: 4000 // 100 = 40 configurations
    check_before_work(parse_config({**TINY, "training": {"budget": 4000, "loss": "L_z", "p": 1}}))
    # on-demand labelling visits each configuration on_demand_visits times
    check_before_work(parse_config({**TINY, "training": {"budget": 19_520, "labelling": "on_demand",
                                                          "on_demand_visits": 2}}))
    with pytest.raises(InputError, match="training pool"):
        check_before_work(parse_config({**TINY, "training": {"budget": 19_560, "labelling": "on_demand",
                                                              "on_demand_visits": 2}}))
    # with min_observable the pool is known only after simulating
    check_before_work(parse_config({**TINY, "data": {**TINY["data"], "min_observable": 0.1},
                                    "training": {"budget": 10**7}}))
    with pytest.raises(InputError, match="fewer than 2 configurations"):
        check_before_work(parse_config({**TINY, "training": {"budget": 20}}))


def _system(n_units):
    from types import SimpleNamespace

    return SimpleNamespace(n_units=n_units, n_coords=n_units, observable=lambda: SimpleNamespace(dim=2))


def test_closure_dim_checked_before_work():
    from macrodyn.config import check_before_work

    check_before_work(parse_config({**TINY, "closure": {"dim": 97}}))  # predator–prey: N = 100, 2 observables
    with pytest.raises(InputError, match="closure.dim = 98 is too large.*must be < 98"):
        check_before_work(parse_config({**TINY, "closure": {"dim": 98}}))


def test_cuda_without_gpu(monkeypatch):
    import torch

    from macrodyn.config import check_before_work

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="device: cuda but no CUDA device is visible; set device: cpu"):
        check_before_work(parse_config({**TINY, "device": "cuda"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_before_work(parse_config({**TINY, "device": "cuda"}))
