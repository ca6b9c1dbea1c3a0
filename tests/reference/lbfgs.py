"""torch.optim.LBFGS iterates for tests/tests/optim_lbfgs.rs: float64 parameters, each problem run
for several step() calls; prints JSON {case: [[x after call 1], [x after call 2], ...]}.

    python lbfgs.py
"""
import json

import torch

torch.set_default_dtype(torch.float64)


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def least_squares_problem():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, 5, generator=g)
    b = torch.randn(20, generator=g)
    return a, b


CASES = {
    "rosenbrock_wolfe": dict(lr=1.0, max_iter=5, history_size=10, line_search_fn="strong_wolfe"),
    "rosenbrock_fixed": dict(lr=0.05, max_iter=5, history_size=10),
    "rosenbrock_wolfe_history3": dict(lr=1.0, max_iter=4, history_size=3, line_search_fn="strong_wolfe"),
    "least_squares_wolfe": dict(lr=1.0, max_iter=3, history_size=5, line_search_fn="strong_wolfe"),
    "least_squares_fixed": dict(lr=0.5, max_iter=4, history_size=100),
}


def run(name, settings, calls=6):
    if name.startswith("rosenbrock"):
        x = torch.tensor([-1.5, 2.0], requires_grad=True)
        f = rosenbrock
    else:
        a, b = least_squares_problem()
        x = torch.zeros(5, requires_grad=True)
        def f(x):
            return 0.5 * ((a @ x - b) ** 2).sum()
    opt = torch.optim.LBFGS([x], **settings)

    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    out = []
    for _ in range(calls):
        opt.step(closure)
        out.append(x.detach().tolist())
    return {"iterates": out, "func_evals": opt.state[x]["func_evals"],
            "n_iter": opt.state[x]["n_iter"]}


if __name__ == "__main__":
    print(json.dumps({name: run(name, s) for name, s in CASES.items()}))
