"""Two ranks under torchrun (gloo) train to the same parameters on every rank, and to those of
single-process training on the same global batches.

Run by pytest; torchrun runs this same file as a script (``__main__``) on each rank.
"""
import subprocess
import sys
from pathlib import Path

import torch

from macrodyn import keys as K
from macrodyn.dynamics import MLPField, OnsagerNet, StandardizedField
from macrodyn.training import LatentLoss, PartialForceLoss, fit_dynamics
from macrodyn.training.options import AdamW, FitOptions
from macrodyn.training.distributed import data_parallel, shard

# name: (model, loss, batch_size); 203 rows, 183 after validation: uneven shards, and with
# batch 91 a last batch of 1 row (one rank's shard is empty)
PROBLEMS = {"mlp_Lz": 61, "onsager_Lxp": 91}


def _problem(name):
    g = torch.Generator().manual_seed(0)
    n, d, k = 203, 2, 3
    z = torch.randn(n, d, generator=g)
    torch.manual_seed(7)
    if name == "mlp_Lz":
        A = torch.tensor([[-0.5, 1.0], [-1.0, -0.5]])
        return StandardizedField(MLPField(d, (16,)), d), LatentLoss(), {K.Z: z, K.JF: z @ A.T}
    field = StandardizedField(OnsagerNet(d, (16,), (8, 8)), d)
    data = {K.Z: z, K.PINV_ROWS: torch.randn(n, k, d, generator=g), K.FORCES: torch.randn(n, k, generator=g),
            K.WEIGHTS: torch.ones(n, k)}
    return field, PartialForceLoss(0.5), data


def _fit(name):
    field, loss, data = _problem(name)
    options = FitOptions(epochs=4, batch_size=PROBLEMS[name], seed=3, optimiser=AdamW(1e-2))
    hist = fit_dynamics(field, data_parallel(loss, field), data, options, desc=None)
    return field, hist


def test_shard_covers_the_batch_once():
    for n in (1, 2, 7, 91):
        parts = [shard(n, r, 2) for r in range(2)]
        rows = torch.cat([p for p, s in parts if s])
        assert torch.equal(rows, torch.arange(n))
        assert abs(sum(s for _, s in parts) / 2 - 1) < 1e-12  # the rank weights average to 1


def test_two_ranks_match_single_process(tmp_path):
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        __file__, str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in PROBLEMS:
        ranks = [torch.load(tmp_path / f"{name}_rank{i}.pt") for i in range(2)]
        for key in ranks[0]["state"]:  # the same parameters on every rank, to the bit
            assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), (name, key)
        assert ranks[0]["val"] == ranks[1]["val"]
        field, hist = _fit(name)
        for key, v in field.state_dict().items():
            torch.testing.assert_close(ranks[0]["state"][key], v, rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")
        torch.testing.assert_close(torch.tensor(ranks[0]["train"]), torch.tensor(hist["train"]), rtol=1e-4, atol=0)
        torch.testing.assert_close(torch.tensor(ranks[0]["val"]), torch.tensor(hist["val"]), rtol=1e-4, atol=0)


def _rank_main(out: Path) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        for name in PROBLEMS:
            field, hist = _fit(name)
            torch.save({"state": field.state_dict(), "train": hist["train"], "val": hist["val"]},
                       out / f"{name}_rank{dist.get_rank()}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(Path(sys.argv[1]))
