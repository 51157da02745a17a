"""deepnotes: deep learning from first principles, on NumPy, with PyTorch's API.

    import deepnotes as dn
    x = dn.randn(4, 3, requires_grad=True)
    (x.tanh() ** 2).sum().backward()
    x.grad
"""

from . import (
    _blas_env,  # noqa: F401  (first: it sets an OpenBLAS variable before NumPy loads)
    backend,
)
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import (
    bool_,
    double,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    uint8,
)
from .creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .io import load, save
from .ops.activation import log_softmax, relu, sigmoid, softmax, tanh
from .ops.elementwise import (
    abs,
    add,
    clamp,
    clip,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    where,
)
from .ops.matmul import matmul
from .ops.reduce import amax, amin, argmax, argmin, logsumexp, max, mean, min, std, sum, var
from .ops.shape import (
    cat,
    concat,
    expand,
    flatten,
    permute,
    reshape,
    squeeze,
    stack,
    transpose,
    unsqueeze,
)
from .random import get_rng_state, initial_seed, manual_seed, set_rng_state
from .tensor import Tensor

bool = bool_  # noqa: A001 - torch.bool
float = float32  # noqa: A001 - torch.float
int = int32  # noqa: A001 - torch.int

__version__ = "0.1.0"

# The subpackages, so that ``import deepnotes as dn`` gives dn.nn, dn.optim, ... as torch does.
from . import analysis, data, models, nn, optim  # noqa: E402
from ._malloc import keep_freed_memory as _keep_freed_memory  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402

_keep_freed_memory()  # glibc: reuse freed NumPy temporaries, no page faults (_malloc.py)

# isort: split
# torch.distributed's API; mpi4py is imported only by init_process_group
from . import distributed  # noqa: E402
