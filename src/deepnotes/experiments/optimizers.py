"""Optimisers on the Rosenbrock function and an ill-conditioned quadratic (notes 004 Q20-Q21).

On f(w) = 1/2 w^T A w with eigenvalues lambda_min << lambda_max, gradient descent is stable only
for lr < 2 / lambda_max, and then the error along the flat direction shrinks by (1 - lr
lambda_min) per step: about kappa = lambda_max / lambda_min steps per e-fold. Momentum
accumulates the consistent flat-direction component (about sqrt(kappa) steps per e-fold with the
best settings); AdaGrad/RMSProp/Adam divide each coordinate by the size of its recent gradients;
Newton's step -H^{-1} g is exact on a quadratic (one step, whatever kappa), and L-BFGS estimates
H^{-1} from the last gradient differences (notes 004 Q20).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Check, Context, Outcome, Table, experiment, fmt

KAPPA = 50.0
ANGLE = np.pi / 6
_R = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])
QUADRATIC_A = _R @ np.diag([1.0, KAPPA]) @ _R.T

PROBLEMS = {
    # name: (start, minimum, threshold on f that counts as "reached")
    "quadratic": ((-2.0, 1.5), (0.0, 0.0), 1e-6),
    "rosenbrock": ((-1.2, 1.0), (1.0, 1.0), 1e-6),
}
FIRST_ORDER = ("SGD", "momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW")
OPTIMIZERS = FIRST_ORDER + ("Newton", "L-BFGS")


def objective(problem: str, w: Any) -> Any:
    """f(w) on Tensors: 1/2 w^T A w, or (1 - x)^2 + 100 (y - x^2)^2."""
    import deepnotes as dn

    if problem == "quadratic":
        a = dn.tensor(QUADRATIC_A.astype(np.float64))
        return 0.5 * (w * (a @ w)).sum()
    x, y = w[0], w[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _make(name: str, params: list[Any], lr: float) -> Any:
    from deepnotes import optim

    return {
        "SGD": lambda: optim.SGD(params, lr=lr),
        "momentum": lambda: optim.SGD(params, lr=lr, momentum=0.9),
        "Nesterov": lambda: optim.SGD(params, lr=lr, momentum=0.9, nesterov=True),
        "AdaGrad": lambda: optim.Adagrad(params, lr=lr),
        "RMSProp": lambda: optim.RMSprop(params, lr=lr),
        "Adam": lambda: optim.Adam(params, lr=lr),
        "AdamW": lambda: optim.AdamW(params, lr=lr, weight_decay=0.01),
        "Newton": lambda: optim.Newton(params),
        "L-BFGS": lambda: optim.LBFGS(params, lr=1, max_iter=1, max_eval=25, history_size=10,
                                      line_search_fn="strong_wolfe"),
    }[name]()


def trajectory(problem: str, name: str, lr: float, steps: int) -> dict[str, Any]:
    """Run ``name`` for ``steps`` steps (iterations for Newton and L-BFGS) in float64; the path,
    f after every step and the step at which f first fell below the problem's threshold."""
    import deepnotes as dn
    from deepnotes import nn

    start, _, threshold = PROBLEMS[problem]
    w = nn.Parameter(dn.tensor(np.array(start, dtype=np.float64)))
    opt = _make(name, [w], lr)

    def closure() -> Any:
        opt.zero_grad()
        loss = objective(problem, w)
        loss.backward()
        return loss

    path, losses = [w.data.copy()], []
    reached = None
    for step in range(steps + 1):
        if step == steps:                                   # f at the last point only
            value = float(objective(problem, w).item())
        elif name in ("Newton", "L-BFGS"):
            value = float(opt.step(closure).item())         # f before the step
        else:
            value = float(closure().item())
            opt.step()
        if not np.isfinite(value) or value > 1e12:
            losses.append(float("inf"))
            break
        losses.append(value)                                # losses[t] = f(w_t)
        if reached is None and value < threshold:
            reached = step
        if value < 1e-20 or step == steps:
            break
        path.append(w.data.copy())
    return dict(path=np.array(path), losses=losses, reached=reached, lr=lr)


def _score(run: dict[str, Any]) -> tuple[float, float]:
    """Sort key: first the step that reached the threshold (inf if none), then the final f."""
    final = run["losses"][-1]
    return (run["reached"] if run["reached"] is not None else np.inf,
            final if np.isfinite(final) else np.inf)


@experiment(
    "optimizers", title="Optimisers: SGD, momentum, adaptive methods, Newton and L-BFGS",
    note="notes 004 Q20-Q21",
    claim="""On an ill-conditioned problem momentum and Adam reach the minimum in fewer steps than
    plain SGD; Newton's method minimises a quadratic in one step and needs only a few steps on
    the Rosenbrock function; L-BFGS, from gradients alone, also needs only a few iterations.""",
    setup="""Two problems in float64 on one 2-D Parameter: a quadratic 1/2 w^T A w with
    eigenvalues 1 and 50 rotated by 30 degrees, from (-2, 1.5), and Rosenbrock
    (1 - x)^2 + 100 (y - x^2)^2 from (-1.2, 1). SGD, momentum 0.9, Nesterov, AdaGrad, RMSProp,
    Adam, AdamW (weight decay 0.01) each with the best learning rate of the grid 1e-4, 3e-4, ...,
    0.3, 1 (quick: 1e-2, 1) for reaching f < 1e-6 first; up to 2,000 steps on
    Rosenbrock and 500 on the quadratic (quick: 100 and 150); deepnotes' Newton (exact
    finite-difference Hessian, full step) and L-BFGS (history 10, strong-Wolfe line search, one
    iteration and at most 25 evaluations per step) for up to 50 iterations.""")
def run(ctx: Context) -> Outcome:
    grid = ctx.pick((1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0), (1e-2, 1.0))
    budget = {"quadratic": ctx.pick(500, 150), "rosenbrock": ctx.pick(2000, 100)}
    best: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in PROBLEMS}
    jobs = [(p, n) for p in PROBLEMS for n in OPTIMIZERS]
    for problem, name in ctx.progress(jobs, "optimisers"):
        if name in ("Newton", "L-BFGS"):
            best[problem][name] = trajectory(problem, name, 1.0, 50)
            continue
        runs = [trajectory(problem, name, lr, budget[problem]) for lr in grid]
        best[problem][name] = min(runs, key=_score)

    styles: dict[str, Any] = {n: f"C{i}" for i, n in enumerate(OPTIMIZERS)}
    groups = {"SGD and momentum": ("SGD", "momentum", "Nesterov"),
              "adaptive": ("AdaGrad", "RMSProp", "Adam", "AdamW"),
              "second order": ("Newton", "L-BFGS")}
    fig, axes = ctx.figure(2, 3, size=(3.2, 2.9))
    for row, problem in enumerate(PROBLEMS):
        if problem == "quadratic":
            xs, ys = np.linspace(-2.5, 2.5, 150), np.linspace(-2.0, 2.0, 150)
        else:
            xs, ys = np.linspace(-2.0, 2.0, 150), np.linspace(-1.0, 3.0, 150)
        gx, gy = np.meshgrid(xs, ys)
        if problem == "quadratic":
            a = QUADRATIC_A
            gz = 0.5 * (a[0, 0] * gx ** 2 + 2 * a[0, 1] * gx * gy + a[1, 1] * gy ** 2)
        else:
            gz = (1 - gx) ** 2 + 100 * (gy - gx ** 2) ** 2
        for col, (group, names) in enumerate(groups.items()):
            ax = axes[row, col]
            ax.contour(gx, gy, np.log10(gz + 1e-3), levels=15, cmap="Greys", linewidths=0.4)
            for name in names:
                run_ = best[problem][name]
                path = run_["path"]
                reached = run_["reached"]
                ax.plot(path[:, 0], path[:, 1], ".-", color=styles[name], lw=0.8, ms=2,
                        label=f"{name} ({reached if reached is not None else 'not reached'})")
            ax.plot(*PROBLEMS[problem][0], "ko", ms=3)
            ax.plot(*PROBLEMS[problem][1], "k*", ms=8)
            ax.set_xlim(xs[0], xs[-1])
            ax.set_ylim(ys[0], ys[-1])
            ax.set_title(f"{problem}: {group}", fontsize=9)
            ax.set_xlabel("w1")
            ax.set_ylabel("w2")
            ax.legend(fontsize=6, loc="lower right" if problem == "quadratic" else "upper left")
    ctx.save_figure(fig, "trajectories", "Paths of the optimisers on contour lines of log10 f "
                    "(dot: the start, star: the minimum), each first-order method with its best "
                    "learning rate; the legend gives the steps (iterations) to f < 1e-6.")

    fig, axes = ctx.figure(1, 2, size=(4.6, 3.4))
    for col, problem in enumerate(PROBLEMS):
        ax = axes[0, col]
        for name in OPTIMIZERS:
            losses = np.maximum(np.array(best[problem][name]["losses"]), 1e-20)
            ax.loglog(np.arange(1, len(losses) + 1), losses, color=styles[name], lw=1,
                      label=name)
        ax.axhline(PROBLEMS[problem][2], color="k", ls=":", lw=0.8)
        ax.set_xlabel("step + 1 (iterations for Newton, L-BFGS)")
        ax.set_ylabel("f(w)")
        ax.set_title(problem)
        if col == 1:
            ax.legend(fontsize=6)
    ctx.save_figure(fig, "loss_vs_step", "f against the step number (dotted: the threshold "
                    "1e-6 that counts as reaching the minimum).")

    def steps(problem: str, name: str) -> float:
        r = best[problem][name]["reached"]
        return float(r) if r is not None else float("inf")

    def shown(value: float) -> str:
        return "never" if not np.isfinite(value) else f"{value:.0f}"

    q = {n: steps("quadratic", n) for n in OPTIMIZERS}
    rb = {n: steps("rosenbrock", n) for n in OPTIMIZERS}
    newton_q1 = best["quadratic"]["Newton"]["losses"][1]
    checks = [
        Check("quadratic (kappa 50): momentum and Adam reach f < 1e-6 in fewer steps than SGD",
              f"steps: SGD {shown(q['SGD'])}, momentum {shown(q['momentum'])}, Adam "
              f"{shown(q['Adam'])}",
              q["momentum"] < q["SGD"] and q["Adam"] < q["SGD"]),
        Check("Newton minimises the quadratic in one step",
              f"f after 1 Newton step: {fmt(newton_q1)}", newton_q1 < 1e-12),
        Check("Newton and L-BFGS need few iterations on Rosenbrock (<= 50), plain SGD more than "
              "10 times as many",
              f"iterations to f < 1e-6: Newton {shown(rb['Newton'])}, L-BFGS "
              f"{shown(rb['L-BFGS'])}, SGD {shown(rb['SGD'])}",
              rb["Newton"] <= 50 and rb["L-BFGS"] <= 50
              and rb["SGD"] > 10 * max(rb["Newton"], rb["L-BFGS"])),
    ]
    bounced = [f"{name} on the {problem} (below 1e-6 at step {r['reached']}, final f "
               f"{fmt(r['losses'][-1])})" for problem, runs_ in best.items()
               for name, r in runs_.items()
               if r["reached"] is not None and r["losses"][-1] > PROBLEMS[problem][2]]
    unsettled = ("Some runs pass below the threshold and bounce back up: " + "; ".join(bounced)
                 + ". With a constant learning rate an adaptive method's step is the learning "
                 "rate times a normalised gradient, which does not shrink with the gradient; a "
                 "decaying learning rate settles it." if bounced else "")
    rows = []
    for name in OPTIMIZERS:
        rows.append([name] + [item for problem in PROBLEMS for item in (
            "-" if name in ("Newton", "L-BFGS") else f"{best[problem][name]['lr']:g}",
            shown(steps(problem, name)), fmt(best[problem][name]["losses"][-1]))])
    table = Table("Best learning rate, steps to f < 1e-6, final f",
                  ["optimiser", "lr (quadratic)", "steps", "final f", "lr (Rosenbrock)",
                   "steps", "final f"], rows)
    results = {p: {n: dict(lr=r["lr"], reached=r["reached"], final=r["losses"][-1],
                           losses=r["losses"][:: max(1, len(r["losses"]) // 50)])
                   for n, r in runs_.items()} for p, runs_ in best.items()}
    return Outcome(
        results=dict(problems=results, steps_quadratic=q, steps_rosenbrock=rb,
                     newton_quadratic_after_one_step=newton_q1, grid=list(grid), budget=budget),
        checks=checks, tables=[table],
        remarks="""A Newton iteration costs 2n + 1 gradient evaluations here (the Hessian by
        finite differences of the gradient) and an L-BFGS iteration one or more (the line
        search), against one for a first-order step; for n = 2 that is cheap, for a network it is
        what rules Newton out (notes 004 Q20). The adaptive methods' results depend on the
        rotation of the quadratic: on an axis-aligned one, dividing by per-coordinate gradient
        sizes would remove the conditioning entirely. """ + unsettled + """ AdamW's decoupled
        weight decay pulls w towards 0, so its fixed point is not Rosenbrock's minimum (1, 1).
        """)
