"""Report figures (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_observables(times: np.ndarray, true: np.ndarray, pred: np.ndarray, names: list[str], path: Path,
                     labels: list[str] | None = None) -> None:
    """True vs predicted given observables; ``true``, ``pred``: ``(T, n_traj, d*)``; ``labels``
    names each trajectory in the legend (e.g. "worst", "median")."""
    d = true.shape[-1]
    fig, axes = plt.subplots(1, d, figsize=(4.5 * d, 3.4), squeeze=False)
    for j in range(d):
        ax = axes[0, j]
        for b in range(true.shape[1]):
            line, = ax.plot(times, true[:, b, j], lw=1.6, label=labels[b] if labels and j == 0 else None)
            ax.plot(times, pred[:, b, j], "--", color=line.get_color(), lw=1.2)
        ax.set_xlabel("t")
        ax.set_title(names[j])
    axes[0, 0].plot([], [], "k-", label="truth")
    axes[0, 0].plot([], [], "k--", label="model")
    axes[0, 0].legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error_over_time(times: np.ndarray, err: np.ndarray, path: Path) -> None:
    """``err``: ``(T, n_traj)`` pointwise relative error; median and 10–90 % band."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    with warnings.catch_warnings():  # NaN: times outside the metric; all-NaN times stay gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        q10, q50, q90 = np.nanquantile(err, [0.1, 0.5, 0.9], axis=1)
    ax.fill_between(times, q10, q90, alpha=0.3, label="10–90 %")
    ax.plot(times, q50, label="median")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("|ẑ* − z*| / |z*|")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error_histogram(errors: np.ndarray, path: Path) -> None:
    """Histogram of the per-trajectory relative errors (log-spaced bins), median and mean marked."""
    e = errors[np.isfinite(errors) & (errors > 0)]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if len(e):
        bins = np.logspace(np.log10(e.min()), np.log10(e.max()) + 1e-9, 30)
        ax.hist(e, bins=bins, color="C0", alpha=0.8)
        ax.axvline(np.median(e), color="k", ls="-", lw=1, label=f"median {np.median(e):.2e}")
        ax.axvline(e.mean(), color="C3", ls="--", lw=1, label=f"mean {e.mean():.2e}")
        ax.set_xscale("log")
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel("relative rollout error per test trajectory")
    ax.set_ylabel("trajectories")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curves(histories: list[dict], closure_hist: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(closure_hist["reconstruction"], label="reconstruction")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_title("closure autoencoder")
    for i, h in enumerate(histories):
        axes[1].plot(h["train"], color=f"C{i}", lw=1, label=f"member {i} train")
        axes[1].plot(h["val"], color=f"C{i}", lw=1, ls="--", label=f"member {i} val")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    axes[1].set_title("macroscopic model")
    axes[1].legend(frameon=False, fontsize=7)
    if any(h.get("score") for h in histories):  # training.select: rollout: the criterion on its own axis
        ax = axes[1].twinx()
        for i, h in enumerate(histories):
            if h.get("score"):
                e, v = zip(*h["score"])
                ax.plot(e, v, color=f"C{i}", lw=1, ls=":", label=f"member {i} rollout score")
        ax.set_yscale("log")
        ax.set_ylabel("rollout error (training trajectories)", fontsize=8)
        ax.legend(frameon=False, fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
