"""derive_genotype on hand-set weights (expected genotypes derived by hand), JSON round trip,
P-DARTS' max-skip constraint, and the network built from a genotype."""

import numpy as np
import pytest

import deepnotes as dn
from deepnotes.nas.genotype import Genotype, NetworkFromGenotype, derive_genotype, random_genotype
from deepnotes.nas.p_darts import derive_with_max_skip
from deepnotes.nas.search_space import PRIMITIVES

I = PRIMITIVES.index  # noqa: E741


def _weights(entries, steps=2):
    """(E, 8) weights of 0.01 with the given {(edge, op): value} entries."""
    w = np.full((sum(2 + i for i in range(steps)), len(PRIMITIVES)), 0.01)
    for (e, op), v in entries.items():
        w[e, I(op)] = v
    return w


# steps = 2: node 0 <- edges 0 (c_{k-2}), 1 (c_{k-1}); node 1 <- edges 2 (c_{k-2}),
# 3 (c_{k-1}), 4 (node 0).
NORMAL = _weights({(0, "none"): 0.9, (0, "sep_conv_3x3"): 0.05,       # 'none' is ignored
                   (1, "skip_connect"): 0.3, (1, "dil_conv_3x3"): 0.2,
                   (2, "avg_pool_3x3"): 0.4,
                   (3, "none"): 0.8, (3, "dil_conv_5x5"): 0.1,
                   (4, "sep_conv_5x5"): 0.35})
REDUCE = _weights({(0, "max_pool_3x3"): 0.6, (1, "sep_conv_3x3"): 0.5, (2, "dil_conv_3x3"): 0.1,
                   (3, "skip_connect"): 0.2, (4, "skip_connect"): 0.7})


def test_derive_genotype_by_hand():
    g = derive_genotype(NORMAL, REDUCE, steps=2)
    # node 0: both of its two edges, strongest first: skip (0.3) from 1, sep3 (0.05) from 0.
    # node 1: edge 2 avg_pool 0.4 and edge 4 sep5 0.35 beat edge 3 (its 0.8 is 'none').
    assert g.normal == (("skip_connect", 1), ("sep_conv_3x3", 0),
                        ("avg_pool_3x3", 0), ("sep_conv_5x5", 2))
    assert g.reduce == (("max_pool_3x3", 0), ("sep_conv_3x3", 1),
                        ("skip_connect", 2), ("skip_connect", 1))
    assert g.normal_concat == g.reduce_concat == (2, 3)
    assert derive_genotype(NORMAL, REDUCE, steps=2, multiplier=1).normal_concat == (3,)


def test_derive_genotype_with_edge_weights():
    # PC-DARTS: edge 2 scaled by 0.1 (0.04) drops below edge 3's dil5 (0.1)
    g = derive_genotype(NORMAL, REDUCE, steps=2, edge_weights_normal=[1, 1, 0.1, 1, 1])
    assert g.normal[2:] == (("sep_conv_5x5", 2), ("dil_conv_5x5", 1))


def test_derive_genotype_checks_shape():
    with pytest.raises(ValueError, match=r"weights_normal must have shape \(9, 8\) for 3 steps"):
        derive_genotype(NORMAL, REDUCE, steps=3)


def test_max_skip_constraint_by_hand():
    w = _weights({(0, "skip_connect"): 0.5, (1, "skip_connect"): 0.4,
                  (2, "skip_connect"): 0.3, (2, "sep_conv_3x3"): 0.25,
                  (3, "skip_connect"): 0.2, (3, "dil_conv_3x3"): 0.05,
                  (4, "sep_conv_5x5"): 0.1})
    assert derive_genotype(w, REDUCE, 2).count("skip_connect") == 4
    # round 1 drops the skip of edge 3 (0.2): node 1 = edge 2 skip (0.3) + edge 4 sep5 (0.1);
    # round 2 drops edge 2's skip (0.3 < 0.4 < 0.5): edge 2 becomes sep3 (0.25)
    g = derive_with_max_skip(w, REDUCE, 2, max_skip=2)
    assert g.normal == (("skip_connect", 0), ("skip_connect", 1),
                        ("sep_conv_3x3", 0), ("sep_conv_5x5", 2))
    assert g.reduce == derive_genotype(w, REDUCE, 2).reduce  # the reduction cell is left alone
    # max_skip 0: edges 1, then 0 lose their skip; all their other ops tie at 0.01 -> the
    # first non-'none' op (max_pool), and equal edges keep input order
    g0 = derive_with_max_skip(w, REDUCE, 2, max_skip=0)
    assert g0.normal == (("max_pool_3x3", 0), ("max_pool_3x3", 1),
                         ("sep_conv_3x3", 0), ("sep_conv_5x5", 2))
    assert derive_with_max_skip(w, REDUCE, 2, max_skip=4) == derive_genotype(w, REDUCE, 2)


def test_genotype_json_round_trip_and_validation(tmp_path):
    g = derive_genotype(NORMAL, REDUCE, steps=2)
    assert Genotype.from_json(g.to_json()) == g
    g.save(tmp_path / "g.json")
    assert Genotype.load(tmp_path / "g.json") == g
    assert Genotype.from_json(g.to_json(method="darts", c=8)) == g  # extra keys are ignored
    with pytest.raises(ValueError, match="unknown operation 'conv'"):
        Genotype((("conv", 0), ("skip_connect", 1)), (2,), g.reduce[:2], (2,))
    with pytest.raises(ValueError, match=r"input 3 out of range 0..1 for node 0"):
        Genotype((("skip_connect", 3), ("skip_connect", 1)), (2,), g.reduce[:2], (2,))
    with pytest.raises(ValueError, match="missing keys"):
        Genotype.from_dict({"normal": []})


def test_network_from_genotype_trains(rng):
    dn.manual_seed(0)
    g = random_genotype(3, np.random.default_rng(1))
    assert all(j < 2 + k // 2 for k, (_, j) in enumerate(g.normal)) and g.steps == 3
    net = NetworkFromGenotype(g, c=8, layers=3)
    x = dn.tensor(rng.standard_normal((4, 1, 8, 8)).astype(np.float32))
    out = net(x)
    assert tuple(out.shape) == (4, 10)
    dn.nn.functional.cross_entropy(out, dn.tensor(np.arange(4))).backward()
    assert all(p.grad is not None for p in net.parameters())
    # one op per edge: 2 per node, 3 nodes
    assert all(len(cell._ops) == 6 for cell in net.cells)
