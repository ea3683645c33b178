"""The simulation's force bill comes from the system's integrator: RK4 makes 4 right-hand-side
calls per step, velocity Verlet (ours or LAMMPS's) 1. metrics.json uses the same number."""
import numpy as np
import pytest

from macrodyn import Run, parse_config
from macrodyn.run.simulate import simulation_force_evaluations
from macrodyn.systems import LennardJones, PredatorPrey


def _counted(system, n_steps=20, b=2):
    rng = np.random.default_rng(0)
    system.counter.reset()
    system.trajectories(system.sample_initial(b, rng), n_steps, 10, progress=False)
    return system.counter.simulation


def test_rk4_counts_four_calls_per_step(monkeypatch):
    s = PredatorPrey(n=10)
    calls = []
    orig = s._forces
    monkeypatch.setattr(s, "_forces", lambda x: calls.append(len(x)) or orig(x))
    assert _counted(s) == len(calls) * s.n_units * 2 == 4 * 20 * 2 * s.n_units


@pytest.mark.parametrize("engine", ["verlet", "lammps"])
def test_lennard_jones_counts_one_call_per_step(engine):
    s = LennardJones(n_atoms=500, engine=engine, relax_steps=100)  # box 7.9: 3 cells per side
    assert s.force_calls_per_step == 1
    assert _counted(s) == 20 * 2 * 500


@pytest.mark.parametrize("system, per_step", [("predator_prey", 4), ("lennard_jones", 1)])
def test_metrics_simulation_cost_uses_the_system(tmp_path, system, per_step):
    params = {"n": 10} if system == "predator_prey" else {"n_atoms": 32, "engine": "verlet"}
    cfg = parse_config({"system": {"name": system, "params": params},
                        "data": {"n_train_trajectories": 3, "n_test_trajectories": 2, "n_steps": 20, "save_every": 10},
                        "closure": {"dim": 1}, "training": {"budget": 100, "p": 0.5}})
    run = Run(cfg, tmp_path)  # touches nothing on disk
    assert not any(tmp_path.iterdir())
    assert simulation_force_evaluations(run) == per_step * 20 * 5 * run.system.n_units
