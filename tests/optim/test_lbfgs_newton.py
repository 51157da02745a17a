"""Second-order methods (notes 004 Q20): LBFGS against torch.optim.LBFGS (iterates, losses,
evaluation counts and the stored history, float64), its line search against the strong Wolfe
conditions, and the finite-difference Newton optimiser on quadratics and logistic regression."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import deepnotes as dn
from deepnotes import optim
from deepnotes.optim.lbfgs import cubic_minimizer, strong_wolfe
from tests.optim.test_optim import _data, _loss


def _rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _lbfgs_run(lib, options, problem="least_squares", steps=3):
    """``steps`` calls of LBFGS.step(closure); the parameters and loss after each, and the
    state."""
    tensor = dn.tensor if lib == "dn" else torch.tensor
    if problem == "least_squares":
        d = _data()
        params = [tensor(d[k], requires_grad=True) for k in ("W", "b", "unused")]
        X, Y = tensor(d["X"]), tensor(d["Y"])  # noqa: N806

        def loss_fn():
            return _loss(params[0], params[1], X, Y)
    else:
        params = [tensor(np.array([-1.2, 1.0, -0.5, 0.8]), requires_grad=True)]

        def loss_fn():
            return _rosenbrock(params[0])
    opt = (optim if lib == "dn" else torch.optim).LBFGS(params, **options)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    path, losses = [], []
    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
        path.append(np.concatenate([(p.data if lib == "dn" else p.detach().numpy()).ravel()
                                    for p in params]))
    return np.stack(path), losses, opt.state_dict()["state"][0]


def _as_array(value):
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return value.data if isinstance(value, dn.Tensor) else np.asarray(value)


def _check_lbfgs(options, problem="least_squares", steps=3, tol=1e-9):
    ours, our_losses, state = _lbfgs_run("dn", options, problem, steps)
    theirs, their_losses, tstate = _lbfgs_run("torch", options, problem, steps)
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)
    np.testing.assert_allclose(our_losses, their_losses, rtol=tol, atol=tol)
    assert (state["func_evals"], state["n_iter"]) == (tstate["func_evals"], tstate["n_iter"])
    assert sorted(state) == sorted(tstate)
    assert len(state["old_dirs"]) == len(tstate["old_dirs"])
    for key in ("d", "prev_flat_grad", "t", "H_diag", "prev_loss"):
        np.testing.assert_allclose(_as_array(state[key]), _as_array(tstate[key]), rtol=1e-6,
                                   atol=1e-8, err_msg=key)
    for key in ("old_dirs", "old_stps", "ro"):
        for ours_k, theirs_k in zip(state[key], tstate[key]):
            np.testing.assert_allclose(_as_array(ours_k), _as_array(theirs_k), rtol=1e-6,
                                       atol=1e-8, err_msg=key)
    return ours


@given(st.fixed_dictionaries(dict(
    lr=st.sampled_from([1.0, 0.5, 0.1]), max_iter=st.integers(1, 15),
    history_size=st.integers(1, 10), line_search_fn=st.sampled_from([None, "strong_wolfe"]),
    tolerance_change=st.sampled_from([1e-9, 1e-5]))))
def test_lbfgs_matches_torch(options):
    _check_lbfgs(options, steps=2)


# (Not the default max_iter=20 without line search: fixed unit steps on Rosenbrock's curved
# valley amplify last-bit differences, ours against PyTorch's fused multiply-adds, to ~1e-8.)
@pytest.mark.parametrize("options", [
    dict(max_iter=5), dict(line_search_fn="strong_wolfe"),
    dict(line_search_fn="strong_wolfe", max_iter=7, history_size=3),
    dict(max_iter=3, max_eval=4, line_search_fn="strong_wolfe"),
    dict(lr=0.5, history_size=2, max_iter=10),
])
def test_lbfgs_on_rosenbrock_matches_torch(options):
    _check_lbfgs(options, problem="rosenbrock", steps=4, tol=1e-8)


def test_lbfgs_with_line_search_solves_rosenbrock():
    path = _check_lbfgs(dict(line_search_fn="strong_wolfe", max_iter=50), problem="rosenbrock",
                        steps=2)
    np.testing.assert_allclose(path[-1], 1.0, atol=1e-6)


def test_lbfgs_stops_at_an_optimum_and_needs_a_closure():
    w = dn.zeros(3, requires_grad=True)
    opt = optim.LBFGS([w])

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 0.0             # gradient 0 <= tolerance_grad: no move
    assert opt.state[w] == {"func_evals": 1, "n_iter": 0}
    with pytest.raises(TypeError):
        opt.step()
    with pytest.raises(ValueError, match="line_search_fn must be None or 'strong_wolfe'"):
        optim.LBFGS([w], line_search_fn="armijo")
    with pytest.raises(ValueError, match="history_size must be a positive integer"):
        optim.LBFGS([w], history_size=0)


@given(st.floats(-5, 5), st.floats(-5, 5), st.floats(0.1, 3), st.floats(-3, 3),
       st.floats(-3, 3))
def test_cubic_minimizer_matches_torch_and_is_the_cubic_minimum(t1, gap, a, b, c):
    """p(t) = a t^3 / 3 + b t^2 + c t: compare with torch's helper on (t, p, p') at two points,
    and where p has a local minimum inside the interval, land on it (p'(t) = 0, p'' > 0)."""
    from torch.optim.lbfgs import _cubic_interpolate

    t2 = t1 + (gap if abs(gap) > 0.1 else 0.5)
    p = lambda t: a * t**3 / 3 + b * t * t + c * t  # noqa: E731
    dp = lambda t: a * t * t + 2 * b * t + c  # noqa: E731
    ours = cubic_minimizer(t1, p(t1), dp(t1), t2, p(t2), dp(t2))
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    theirs = _cubic_interpolate(t1, f64(p(t1)), f64(dp(t1)), t2, f64(p(t2)), f64(dp(t2)))
    if math.isfinite(float(theirs)):            # (torch's is NaN for a degenerate cubic)
        assert ours == pytest.approx(float(theirs), rel=1e-12, abs=1e-12)
    assert min(t1, t2) <= ours <= max(t1, t2)
    disc = b * b - a * c
    if disc > 1e-3:                             # a strict local minimum: p'' = 2 sqrt(disc) > 0
        t_min = (-b + math.sqrt(disc)) / a
        if min(t1, t2) + 1e-6 < t_min < max(t1, t2) - 1e-6:
            assert ours == pytest.approx(t_min, rel=1e-8, abs=1e-8)


@given(st.floats(0.1, 10), st.floats(-3, 3), st.floats(0.05, 3))
def test_strong_wolfe_returns_a_point_that_satisfies_both_conditions(scale, shift, t0):
    """phi(t) = f(x + t d) for a smooth non-quadratic f along a descent direction."""
    x = np.array([shift, -1.0])
    f = lambda z: scale * np.log(1 + z[0] ** 2) + (z[1] - 0.5 * z[0]) ** 2  # noqa: E731
    grad = lambda z: np.array([scale * 2 * z[0] / (1 + z[0] ** 2) - (z[1] - 0.5 * z[0]),  # noqa: E731
                               2 * (z[1] - 0.5 * z[0])])
    g = grad(x)
    d = -g
    gtd = float(g @ d)
    if gtd > -1e-6:
        return
    f_t, g_t, t, evals = strong_wolfe(lambda t: (f(x + t * d), grad(x + t * d)), t0, d, f(x),
                                      g, gtd)
    assert 1 <= evals <= 25
    assert f_t == f(x + t * d) and np.array_equal(g_t, grad(x + t * d))
    assert f_t <= f(x) + 1e-4 * t * gtd                       # sufficient decrease
    assert abs(float(g_t @ d)) <= 0.9 * abs(gtd) + 1e-12      # curvature


# -- Newton ---------------------------------------------------------------------------------------

def _newton_closure(opt, loss_fn):
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss
    return closure


@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 10_000))
def test_newton_solves_a_convex_quadratic_in_one_step(rows, cols, seed):
    """f(W, b) = 1/2 |A vec(W, b) - y|^2 + 1/2 |vec|^2: one step with lr = 1 is the minimiser
    (A^T A + I)^{-1} A^T y, and the Hessian found by finite differences is A^T A + I."""
    rng = np.random.default_rng(seed)
    n = rows * cols + cols
    a, y = rng.standard_normal((n + 2, n)), rng.standard_normal(n + 2)
    weight = dn.tensor(rng.standard_normal((rows, cols)), requires_grad=True)
    bias = dn.tensor(rng.standard_normal(cols), requires_grad=True)
    at, yt = dn.tensor(a), dn.tensor(y)

    def loss_fn():
        flat = dn.cat([weight.reshape(-1), bias])
        return 0.5 * ((at @ flat - yt) ** 2).sum() + 0.5 * (flat * flat).sum()

    opt = optim.Newton([weight, bias])
    closure = _newton_closure(opt, loss_fn)
    opt.step(closure)
    hessian = a.T @ a + np.eye(n)
    solution = np.linalg.solve(hessian, a.T @ y)
    np.testing.assert_allclose(np.concatenate([weight.data.ravel(), bias.data]), solution,
                               rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(opt.state[weight]["hessian"].data, hessian, rtol=1e-7, atol=1e-6)
    assert opt.state[weight]["func_evals"] == 2 * n + 1
    opt.step(closure)                                          # already there: stays
    np.testing.assert_allclose(np.concatenate([weight.data.ravel(), bias.data]), solution,
                               rtol=1e-7, atol=1e-8)


def test_newton_on_logistic_regression_is_the_irls_step_and_converges_fast(rng):
    """Logistic regression (notes 004 Q22): the Hessian is X^T diag(p (1 - p)) X, and Newton
    (= iteratively reweighted least squares) converges in a handful of steps; gradient descent
    is still far off after as many."""
    x = np.c_[rng.standard_normal((60, 3)), np.ones(60)]
    y = (x @ np.array([1.5, -2.0, 0.5, 0.3]) + rng.standard_normal(60) > 0).astype(float)
    xt, yt = dn.tensor(x), dn.tensor(y)

    def run(make, steps, newton):
        w = dn.zeros(4, dtype=dn.float64, requires_grad=True)
        opt = make([w])
        loss_fn = lambda: (dn.log(1 + dn.exp(xt @ w)) - yt * (xt @ w)).mean() + 0.05 * (  # noqa: E731
            w * w).sum()
        closure = _newton_closure(opt, loss_fn)
        for _ in range(steps):
            if newton:
                opt.step(closure)
            else:
                closure()
                opt.step()
        return w.data

    def gradient(w):
        p = 1 / (1 + np.exp(-x @ w))
        return x.T @ (p - y) / len(y) + 0.1 * w

    w0 = np.zeros(4)
    p0 = 1 / (1 + np.exp(-x @ w0))
    hessian = x.T @ (x * (p0 * (1 - p0))[:, None]) / len(y) + 0.1 * np.eye(4)
    irls = w0 - np.linalg.solve(hessian, gradient(w0))
    np.testing.assert_allclose(run(optim.Newton, 1, True), irls, rtol=1e-7, atol=1e-8)
    w_newton = run(optim.Newton, 6, True)
    assert np.abs(gradient(w_newton)).max() < 1e-10
    w_gd = run(lambda p: optim.SGD(p, lr=0.5), 6, False)
    assert np.abs(gradient(w_gd)).max() > 1e-2


def test_newton_damping_and_singular_hessians():
    """f = (w0 + w1)^2 has a singular Hessian [[2, 2], [2, 2]]: plain Newton cannot solve it,
    damping lambda gives the step -(H + lambda I)^{-1} g."""
    w = dn.tensor([1.0, 2.0], dtype=dn.float64, requires_grad=True)
    loss_fn = lambda: (w.sum()) ** 2  # noqa: E731
    opt = optim.Newton([w])
    with pytest.raises(RuntimeError, match="singular; use damping > 0"):
        opt.step(_newton_closure(opt, loss_fn))
    np.testing.assert_array_equal(w.data, [1.0, 2.0])
    damped = optim.Newton([w], damping=0.5, lr=0.8)
    damped.step(_newton_closure(damped, loss_fn))
    hessian, grad = np.full((2, 2), 2.0), np.array([6.0, 6.0])
    expected = np.array([1.0, 2.0]) - 0.8 * np.linalg.solve(hessian + 0.5 * np.eye(2), grad)
    np.testing.assert_allclose(w.data, expected, rtol=1e-8)
    with pytest.raises(ValueError, match="Invalid damping value: -1"):
        optim.Newton([w], damping=-1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.Newton([w], lr=-1.0)
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        optim.Newton([{"params": [w]}, {"params": [dn.zeros(1, requires_grad=True)]}])


def test_newton_converges_quadratically_on_rosenbrock():
    """Close to the minimum the error roughly squares at each step (notes 004 Q20)."""
    w = dn.tensor([1.2, 1.3], dtype=dn.float64, requires_grad=True)
    opt = optim.Newton([w])
    closure = _newton_closure(opt, lambda: _rosenbrock(w))
    errors = []
    for _ in range(5):
        opt.step(closure)
        errors.append(np.abs(w.data - 1).max())
    assert errors[-1] < 1e-8
    assert errors[2] < 10 * errors[1] ** 2 + 1e-9
