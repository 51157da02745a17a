"""P-DARTS' skip dropout with a decaying rate."""

import numpy as np
import pytest

import deepnotes as dn
from deepnotes.nas.p_darts import PDartsNetwork, SkipDropMixedOp, skip_drop_rate
from deepnotes.nas.search_space import PRIMITIVES


def test_skip_drop_rate_decays_exponentially():
    assert skip_drop_rate(0) == pytest.approx(0.3)
    assert skip_drop_rate(5, p0=0.4, decay=0.2) == pytest.approx(0.4 * np.exp(-1.0))
    rates = [skip_drop_rate(e) for e in range(10)]
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_dropout_after_identity_skip_only_in_training(rng):
    dn.manual_seed(0)
    op = SkipDropMixedOp(4, 1).double()
    op.drop_prob = 0.5
    x = rng.standard_normal((8, 4, 6, 6)) + 5.0  # no zeros of its own
    only_skip = dn.tensor(np.eye(len(PRIMITIVES))[PRIMITIVES.index("skip_connect")])
    out = op(dn.tensor(x), only_skip).data
    kept = out != 0
    assert 0.4 < kept.mean() < 0.6                            # about half dropped
    np.testing.assert_allclose(out[kept], 2 * x[kept])         # inverted dropout: x / (1 - p)
    op.eval()
    np.testing.assert_allclose(op(dn.tensor(x), only_skip).data, x)
    # at stride 2 the skip is a FactorizedReduce (with weights): no dropout
    op2 = SkipDropMixedOp(4, 2).double()
    op2.drop_prob = 0.9
    a = op2(dn.tensor(x), only_skip).data
    assert np.all(a == op2._ops[PRIMITIVES.index("skip_connect")](dn.tensor(x)).data)


def test_set_drop_prob_reaches_every_edge():
    net = PDartsNetwork(c=4, layers=2, steps=2)
    net.set_drop_prob(0.25)
    ops = [m for m in net.modules() if isinstance(m, SkipDropMixedOp)]
    assert len(ops) == 2 * 5 and all(m.drop_prob == 0.25 for m in ops)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 1.0"):
        net.set_drop_prob(1.0)
