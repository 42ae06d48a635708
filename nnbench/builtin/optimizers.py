"""Built-in optimizers with default learning rates that work on standardized inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Optimizer, SearchRange

MOMENTUM = {"momentum": SearchRange(0.5, 0.99, log=False)}

def optimizers() -> tuple[Optimizer, ...]:
    """The built-in optimizers (torch is imported when they are registered)."""
    from torch import optim

    return (
        Optimizer("sgd", optim.SGD, 0.05, "plain stochastic gradient descent"),
        Optimizer("momentum", optim.SGD, 0.01, "SGD with heavy-ball momentum 0.9",
                  params={"momentum": 0.9}, tunable=MOMENTUM),
        Optimizer("nesterov", optim.SGD, 0.01, "SGD with Nesterov momentum 0.9",
                  params={"momentum": 0.9, "nesterov": True}, tunable=MOMENTUM),
        Optimizer("adam", optim.Adam, 1e-3, "Adam (Kingma & Ba)"),
        Optimizer("adamw", optim.AdamW, 1e-3, "Adam with decoupled weight decay 0.01",
                  params={"weight_decay": 0.01}, tunable={"weight_decay": SearchRange(1e-5, 0.1)}),
        Optimizer("rmsprop", optim.RMSprop, 1e-3, "RMSprop (alpha 0.99)"),
        Optimizer("adagrad", optim.Adagrad, 1e-2, "Adagrad"),
        Optimizer("adadelta", optim.Adadelta, 1.0, "Adadelta (rho 0.9)"),
        Optimizer("adamax", optim.Adamax, 2e-3, "Adamax, the infinity-norm Adam variant"),
        Optimizer("nadam", optim.NAdam, 2e-3, "Adam with Nesterov momentum"),
        Optimizer("radam", optim.RAdam, 1e-3, "rectified Adam"),
        Optimizer("lbfgs", optim.LBFGS, 1.0,
                  "limited-memory BFGS, 5 iterations with strong-Wolfe line search per batch",
                  params={"max_iter": 5, "history_size": 10, "line_search_fn": "strong_wolfe"},
                      needs_closure=True),
    )


@hookimpl
def register_optimizers(register: Callable[[Optimizer], None]) -> None:
    for optimizer in optimizers():
        # Every update above but LBFGS's is element-wise: seeds stacked into one ensemble step
        # exactly as they would alone. LBFGS's line search couples all entries.
        register(dataclasses.replace(optimizer, vectorizable=not optimizer.needs_closure))
