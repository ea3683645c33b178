"""The per-stage peak memory that run folders record (macrodyn.io.peak_rss)."""
import sys

import numpy as np
import pytest

from macrodyn.io import peak_rss

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


def test_peak_covers_an_allocation_and_reset_starts_a_new_one():
    peak_rss(reset=True)
    a = np.ones(300 * 2**20 // 8)  # 300 MiB, touched, then freed: only the peak remembers it
    del a
    during = peak_rss(reset=True)  # a reset sets the peak to the memory in use now
    after = peak_rss()
    assert during >= 300 * 2**20
    assert after < during - 200 * 2**20  # the freed array is not in the new peak
