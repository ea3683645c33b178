"""``torchrun --nproc_per_node N -m macrodyn.torchrun CONFIG --out DIR``: the dynamics stage of
a run trained data-parallel (DDP, :mod:`macrodyn.training.distributed`), after ``macrodyn
simulate``, ``label`` and ``train-closure`` on the same folder; ``macrodyn evaluate`` and
``report`` then continue as usual. CPU processes use gloo; ``device: cuda`` uses NCCL with one
GPU per process (``LOCAL_RANK``)."""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from macrodyn.config import default_config_path, load_config
from macrodyn.data.store import ChunkedTable
from macrodyn.errors import InputError
from macrodyn.run import Run
from macrodyn.run.closure import load_closure
from macrodyn.run.dynamics import dynamics_stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="torchrun --nproc_per_node N -m macrodyn.torchrun",
                                 description="Train the macroscopic model(s) of a run data-parallel (DDP).")
    ap.add_argument("config", nargs="?", help="YAML config (default: the embedded predator-prey experiment)")
    ap.add_argument("--out", "-o", default=None, help="run folder holding labels and closure.pt "
                    "(default: runs/<config name>)")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        path = Path(args.config) if args.config else default_config_path()
        cfg = load_config(path)
        out = Path(args.out) if args.out else Path("runs") / path.stem
        cuda = cfg.device == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
        try:
            run = Run.open(out, cfg, progress=dist.get_rank() == 0 and not args.quiet)
            if not ChunkedTable.open(run.store, "labels").is_complete():
                raise InputError(f"labels in {run.store} are incomplete; run `macrodyn label` first.")
            dynamics_stage(run, load_closure(run))
        finally:
            dist.destroy_process_group()
    except InputError as e:
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
