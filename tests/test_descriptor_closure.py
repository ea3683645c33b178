"""closure.input: descriptors end to end: checked before any work, trained and used by every stage,
and a closure that cannot tell relabelled atoms apart."""
import numpy as np
import pytest
import torch

from macrodyn import Run, keys as K, parse_config, run_all
from macrodyn.closure.autoencoder import DescriptorClosure
from macrodyn.config import check_before_work, closure_descriptors
from macrodyn.data import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.model.parts import make_closure
from macrodyn.run.closure import load_closure
from macrodyn.systems.md import LennardJones

CFG = {"seed": 2,
       "system": {"name": "lennard_jones", "params": {"n_atoms": 108, "engine": "verlet"}},
       "data": {"n_train_trajectories": 4, "n_test_trajectories": 2, "n_steps": 40, "save_every": 4,
                "chunk_trajectories": 2},
       "closure": {"input": "descriptors", "descriptor_basis": 4, "dim": 3, "hidden": [16], "epochs": 3,
                   "cond_weight": 1e-5, "cond_on": "closure", "cond_batch": 4, "observable_scale": 20.0},
       "model": {"hidden": [8], "potential_hidden": [8]},
       "training": {"budget": 1080, "p": 0.25, "epochs": 2, "chunk_configs": 10, "members": 1}}


@pytest.fixture(scope="module")
def descriptor_run(tmp_path_factory):
    run = Run.create(parse_config(CFG), tmp_path_factory.mktemp("run") / "run", progress=False)
    return run, run_all(run, ("simulate", "label", "closure", "dynamics", "evaluate"))


def test_every_stage_runs_on_the_descriptor_closure(descriptor_run):
    run, metrics = descriptor_run
    ae = load_closure(run)
    assert isinstance(ae, DescriptorClosure) and ae.dim == 4
    assert metrics["force_evaluations"] == 1080 and np.isfinite(metrics["rollout_rel_error"])


def test_the_trained_closure_ignores_atom_labels(descriptor_run):
    """Relabelling the atoms of test snapshots (and shifting the box contents) leaves z unchanged, where
    a closure of raw coordinates would see a different state."""
    run, _ = descriptor_run
    ae = load_closure(run).double()
    x = ChunkedTable.open(run.store, "test").gather(K.TRAJ, np.array([[0, 0], [1, 5]]))
    perm = np.random.default_rng(0).permutation(108)
    y = x.reshape(2, 108, 6)[:, perm].copy()
    y[..., :3] += np.array([0.4, -2.0, 1.1])
    z, zy = ae(torch.as_tensor(x)), ae(torch.as_tensor(y.reshape(2, -1)))
    torch.testing.assert_close(zy, z, rtol=1e-9, atol=1e-10)


def test_descriptors_are_refused_before_any_work_where_they_cannot_serve():
    with pytest.raises(InputError, match="defines no invariant descriptors"):
        check_before_work(parse_config({"system": {"params": {"n": 10}}, "closure": {"input": "descriptors"}}))
    wide = {**CFG, "closure": {**CFG["closure"], "dim": 13}}
    with pytest.raises(InputError, match=r"closure.dim = 13 .* \[1, 12\]"):
        check_before_work(parse_config(wide))
    with_energy = {**CFG, "closure": {**CFG["closure"], "dim": 15, "descriptor_energy": True}}
    check_before_work(parse_config(with_energy))  # the energy family adds 3: 15 fit
    with pytest.raises(InputError, match=r"closure.dim = 16 .* \[1, 15\]"):
        check_before_work(parse_config({**with_energy, "closure": {**with_energy["closure"], "dim": 16}}))


def test_energy_descriptors_are_refused_where_the_system_offers_none():
    class OnlyRadial(LennardJones):  # a user's system whose descriptors() predates the energy family
        def descriptors(self, n_basis=8):
            return super().descriptors(n_basis)

    c = parse_config({**CFG, "closure": {**CFG["closure"], "descriptor_energy": True}}).closure
    system = OnlyRadial(n_atoms=108)
    with pytest.raises(InputError, match="offers no energy descriptors"):
        closure_descriptors(c, system)
    assert closure_descriptors(c.model_copy(update={"descriptor_energy": False}), system).dim == 12
    assert isinstance(make_closure(c, LennardJones(n_atoms=108)), DescriptorClosure)
    assert make_closure(c, LennardJones(n_atoms=108)).descriptors.names[-1] == "cu"
