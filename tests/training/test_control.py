"""The snapshot control variate: leave-one-out window means, its scale, and unbiasedness."""
from itertools import combinations

import numpy as np
import pytest
import torch

from macrodyn import keys as K
from macrodyn.closure import ClosureAutoencoder
from macrodyn.observables import BlockMeans
from macrodyn.systems import PredatorPrey
from macrodyn.training import compute_features, label
from macrodyn.training.control import SnapshotControl
from tests.training.unbiased import assert_loss_is_lx_up_to_a_constant


def _labels(rng, n_traj=4, n_saved=6, n=12, k=3, forces=None):
    where = np.array([(r, t) for r in range(n_traj) for t in range(n_saved)])
    idx = np.sort(np.stack([rng.choice(n, k, replace=False) for _ in where]), 1)
    f = rng.standard_normal(idx.shape) if forces is None else np.take_along_axis(forces(where), idx, 1)
    return where, idx, f


def _brute_mean(where, idx, f, n, window, m):
    """Mean label of each coordinate over the other configurations within ±window snapshots of m."""
    s, c = np.zeros(n), np.zeros(n)
    for j in range(len(where)):
        if j != m and abs(where[j, 1] - where[m, 1]) <= window:
            s[idx[j]] += f[j]
            c[idx[j]] += 1
    return np.where(c > 0, s / np.maximum(c, 1), 0.0)


@pytest.mark.parametrize("window", [0, 1, 3])
def test_window_means_leave_the_configuration_out(rng, window):
    where, idx, f = _labels(rng)
    ctl = SnapshotControl(where, idx, f, 12, 6, window, coords_per_unit=2)
    scale = np.tile(ctl.beta, 6)
    rows = np.arange(len(where))
    got = ctl(rows)
    for m in rows:
        np.testing.assert_allclose(got[m], scale * _brute_mean(where, idx, f, 12, window, m), atol=1e-12)
    # the configuration's own forces do not enter its prediction (only through the global scale β)
    f2 = f.copy()
    f2[5] += 100.0
    ctl2 = SnapshotControl(where, idx, f2, 12, 6, window, coords_per_unit=2)
    np.testing.assert_allclose(ctl2(np.array([5]))[0] / np.tile(ctl2.beta, 6), got[5] / scale, atol=1e-12)


def test_scale_is_one_for_repeating_forces_and_near_zero_for_unrelated_ones(rng):
    base = rng.standard_normal((6, 12))  # the same forces at a snapshot in every trajectory
    where, idx, f = _labels(rng, n_traj=8, forces=lambda w: base[w[:, 1]])
    ctl = SnapshotControl(where, idx, f, 12, 6, 0)
    np.testing.assert_allclose(ctl.beta, [1.0])
    rows = np.arange(len(where))
    pred = ctl(rows)
    covered = np.take_along_axis(pred, idx, 1) != 0
    np.testing.assert_allclose(np.take_along_axis(pred, idx, 1)[covered], f[covered])
    # independent forces: nothing to predict, and the prediction adds almost no variance to f − c
    where, idx, f = _labels(np.random.default_rng(3), n_traj=200)
    ctl = SnapshotControl(where, idx, f, 12, 6, 1)
    assert abs(ctl.beta[0]) < 0.3  # ~4 standard errors
    assert np.take_along_axis(ctl(np.arange(len(where))), idx, 1).var() < 0.01 * f.var()


def test_rejects_mismatched_labels(rng):
    where, idx, f = _labels(rng)
    with pytest.raises(ValueError, match="do not match"):
        SnapshotControl(where, idx[:-1], f[:-1], 12, 6, 1)


def test_control_keeps_estimate_unbiased_and_the_loss_equivalent(rng):
    """Over every 2-subset of 20 coordinates, with an arbitrary prediction c: the estimate of J f is exact
    on average, and the loss differs from L_x / N by a constant (so its gradients are unbiased)."""
    s = PredatorPrey(n=10)
    x = s.sample_initial(1, rng) + 0.05 * rng.standard_normal((1, 20))
    ae = ClosureAutoencoder(BlockMeans(2), 20, 2, hidden=(8,))
    subsets = np.array(list(combinations(range(20), 2)))
    xs = np.repeat(x, len(subsets), axis=0)
    c = np.repeat(s.forces(x) + rng.standard_normal((1, 20)), len(subsets), axis=0)  # a rough prediction
    feats = compute_features(ae, xs, subsets, label(s, xs, subsets), control=c, dtype=torch.float64)
    full_idx = np.arange(20)[None]
    exact = compute_features(ae, x, full_idx, label(s, x, full_idx), dtype=torch.float64)
    torch.testing.assert_close(feats[K.JF_ESTIMATE].mean(0), exact[K.JF][0])
    assert_loss_is_lx_up_to_a_constant(feats, exact)
    # a good prediction lowers the label noise: the spread of the estimate over subsets
    plain = compute_features(ae, xs, subsets, label(s, xs, subsets), dtype=torch.float64)
    good = compute_features(ae, xs, subsets, label(s, xs, subsets), control=np.repeat(s.forces(x), len(subsets), 0)
                            + 0.01 * rng.standard_normal((len(subsets), 20)), dtype=torch.float64)
    assert good[K.JF_ESTIMATE].std(0).max() < 0.1 * plain[K.JF_ESTIMATE].std(0).max()


def test_pipeline_features_use_each_labels_own_prediction(tmp_path):
    """features_for (chunk by chunk) gives every labelled configuration the prediction of its own row:
    equal to compute_features on the whole table with the control of all rows at once."""
    from macrodyn import Run, parse_config, run_all
    from macrodyn.data import ChunkedTable
    from macrodyn.run.closure import closure_stage
    from macrodyn.run.dynamics import stored_features as features_for
    from macrodyn.run.pool import labelled_configs

    cfg = parse_config({"data": {"n_train_trajectories": 6, "n_test_trajectories": 2, "n_steps": 200,
                                 "save_every": 10, "chunk_trajectories": 3},
                        "closure": {"epochs": 1},
                        "training": {"budget": 1200, "p": 0.1, "chunk_configs": 7, "control": "snapshots",
                                     "control_window": 2}})
    run = Run.create(cfg, tmp_path / "run", progress=False)
    run_all(run, ("simulate", "label"))
    ae = closure_stage(run)
    got = features_for(run, ae)
    lab = ChunkedTable.open(run.store, "labels").read()
    ctl = SnapshotControl(lab[K.WHERE], lab[K.INDEX], lab[K.FORCES], run.system.n_coords, run.n_saved, 2)
    want = compute_features(ae, labelled_configs(run, lab), lab[K.INDEX], lab[K.FORCES],
                            control=ctl(np.arange(len(lab[K.WHERE]))))
    assert got[K.FORCES].shape[0] == run.n_configs > 7  # several chunks
    for key in (K.FORCES, K.JF_ESTIMATE, K.PINV_ROWS):
        torch.testing.assert_close(got[key], want[key])
    assert not torch.allclose(got[K.FORCES], torch.as_tensor(lab[K.FORCES], dtype=got[K.FORCES].dtype))
