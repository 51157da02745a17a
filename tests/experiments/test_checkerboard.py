"""The checkerboard experiment (notes 004 Q38) on a quick run."""

import numpy as np

from deepnotes.experiments.checkerboard import artefact

from .conftest import check_files


def test_uneven_overlap_prints_the_pattern_even_overlap_does_not(quick):
    amp = quick("checkerboard").results["amplitude"]
    k3, k4, rc = amp["transposed k3 s2"], amp["transposed k4 s2"], amp["resize + conv k3"]
    assert k3["ones kernel"] > 1.0 and k4["ones kernel"] < 1e-6 and rc["ones kernel"] < 1e-6
    assert k3["uniform kernels (mean)"] > 2 * k4["uniform kernels (mean)"]
    assert rc["uniform kernels (mean)"] < 1e-5
    assert min(k3["trained"], k4["trained"]) > 0.05 > 1e-3 > rc["trained"]


def test_ones_kernel_k3_gives_the_1_2_4_counts(quick):
    out = np.array(quick("checkerboard").results["ones_kernel_outputs"]["transposed k3 s2"])
    inner = out[2:-2, 2:-2]                      # overlap counts per axis: 1 or 2 -> 1, 2, 4
    assert sorted(np.unique(inner).tolist()) == [1.0, 2.0, 4.0]
    check_files(quick("checkerboard").out, figures=2)


def test_artefact_measure():
    flat = np.full((12, 12), 3.0)
    assert artefact(flat) == 0.0
    board = np.indices((12, 12)).sum(axis=0) % 2 + 1.0      # 1, 2 alternating: means 1 and 2
    assert abs(artefact(board) - 1 / 1.5) < 1e-12
