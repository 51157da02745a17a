"""Optimisers with PyTorch's API and update rules (notes 004 Q20-Q21): ``SGD`` (momentum, Nesterov,
weight decay, and the notes' EMA momentum), ``Adagrad``, ``RMSprop``, ``Adadelta``, ``Adam``/
``AdamW``/``Adamax``/``NAdam``, the quasi-Newton ``LBFGS`` and a finite-difference ``Newton`` for
small problems, and ``lr_scheduler``. Updates write ``p.data`` in place with NumPy; state dicts use
PyTorch's format."""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, Adamax, AdamW, NAdam
from .lbfgs import LBFGS
from .newton import Newton
from .optimizer import Optimizer
from .param_groups import l1_penalty, l2_penalty, param_groups, split_decay
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "LBFGS", "NAdam", "Newton",
           "Optimizer", "RMSprop", "lr_scheduler", "l1_penalty", "l2_penalty", "param_groups",
           "split_decay"]
