"""Tie stored data to the system's code: a fingerprint of what the system computes.

A run folder's trajectories and labels are only valid for the code that made them. The
config names the system and its parameters, but an edited ``_forces`` (a sign fixed, a
constant changed) keeps both. :func:`fingerprint` records the class, the parameters and
the forces on a few fixed states (drawn by ``sample_initial`` from a fixed seed);
:func:`compare_fingerprint` says whether a folder's data were made by other code.

Why not a plain hash of the forces: the same code on another CPU (AVX2 vs AVX-512, another
thread count) differs in the last bits, and rounding before hashing only makes such a flip
rare (a value near a rounding boundary still flips), not impossible. So the fingerprint keeps,
besides an exact hash (equal hashes: certainly the same), a small *sketch* — the states' and
forces' sums and a few fixed random projections, relative to their scale — compared with a
tolerance (``RTOL``) far above float noise (~1e-15) and far below any real change.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from macrodyn.systems.base import MicroSystem

VERSION = 1
#: fixed-state seed and size
SEED, N_STATES, N_PROJECTIONS = 20240917, 2, 8
#: sketch entries further apart than this (relative to the scale) mean the code changed
RTOL = 1e-7


def _sketch(a: np.ndarray, seed: int) -> tuple[float, list[float]]:
    """``(scale, [sum, projection_1 … projection_k] / scale)`` of ``a``; each entry is O(1)."""
    flat = np.ascontiguousarray(a, dtype=np.float64).ravel()
    scale = float(np.sqrt(np.mean(flat * flat))) if flat.size else 0.0
    if scale == 0.0 or not math.isfinite(scale):
        return scale, [0.0] * (N_PROJECTIONS + 1)
    rng = np.random.default_rng([seed, flat.size])
    w = rng.standard_normal((N_PROJECTIONS, flat.size)) / math.sqrt(flat.size)
    return scale, [float(flat.mean() / scale)] + [float(v) for v in (w @ flat) / scale]


def _hash(a: np.ndarray) -> str:
    a = np.asarray(a, dtype=np.float64)
    scale = float(np.abs(a).max()) if a.size else 0.0
    r = np.round(a / scale, 8) + 0.0 if scale > 0 else a  # + 0.0: -0.0 and 0.0 hash alike
    h = hashlib.sha256(f"{scale:.8e} {a.shape}".encode())
    h.update(np.ascontiguousarray(r).tobytes())
    return h.hexdigest()[:20]


def _jsonable(v):
    return json.loads(json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def fingerprint(system: MicroSystem, name: str, params: dict) -> dict:
    """What the system computes, as a small JSON-able dict (for a data table's attrs).

    Keys: ``version``, ``class`` (``module:qualname``), ``name``, ``params``, ``n_coords``, and for
    ``sample_initial`` (``states``) and the forces on those states (``forces``): ``hash``, ``scale``
    and ``sketch``. Costs ``sample_initial(2)`` and one full force evaluation of 2 states; the
    system's force counter is left as it was.
    """
    c = system.counter
    saved = (c.labels, c.simulation, c.label_seconds)
    try:
        x = np.asarray(system.sample_initial(N_STATES, np.random.default_rng(SEED)), dtype=np.float64)
        f = np.asarray(system.forces(x), dtype=np.float64)
    finally:
        c.labels, c.simulation, c.label_seconds = saved
    out = {"version": VERSION, "class": f"{type(system).__module__}:{type(system).__qualname__}", "name": name,
           "params": _jsonable(params or {}), "n_coords": int(system.n_coords)}
    for key, a in (("states", x), ("forces", f)):
        scale, sketch = _sketch(a, SEED)
        out[key] = {"hash": _hash(a), "scale": scale, "sketch": sketch}
    return out


def _differs(old: dict, new: dict) -> bool:
    if old.get("hash") == new.get("hash"):
        return False
    so, sn = old.get("scale"), new.get("scale")
    ko, kn = old.get("sketch") or [], new.get("sketch") or []
    if so is None or sn is None or len(ko) != len(kn):
        return True
    if abs(so - sn) > RTOL * max(abs(so), abs(sn)):
        return True
    return any(not abs(a - b) <= RTOL for a, b in zip(ko, kn))


def compare_fingerprint(old: dict | None, new: dict) -> str | None:
    """``None`` if data made under fingerprint ``old`` are valid for ``new``; else one line saying why not.

    A missing ``old`` (data written before fingerprints) is accepted. Float noise (another CPU's
    rounding) is tolerated; a change of the forces or of ``sample_initial`` on the fixed states is not.
    """
    if not old:
        return None
    fix = "use a new --out or delete data.zarr"
    if old.get("version") != new.get("version"):
        return None  # another fingerprint scheme: nothing comparable (never refuse on our own format change)
    if old.get("n_coords") != new.get("n_coords"):
        return (f"this folder's data were made with N = {old.get('n_coords')} coordinates, the system now has "
                f"N = {new.get('n_coords')}; {fix}.")
    moved = f" (class {old.get('class')} → {new.get('class')})" if old.get("class") != new.get("class") else ""
    if _differs(old.get("states", {}), new.get("states", {})):
        return (f"the system's code changed since this folder's data were made (sample_initial gives other states "
                f"from the same seed{moved}); {fix}.")
    if _differs(old.get("forces", {}), new.get("forces", {})):
        return (f"the system's code changed since this folder's data were made (forces differ on fixed "
                f"states{moved}); {fix}.")
    return None
