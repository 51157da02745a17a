"""torchvision's model definitions as the zoo's oracle.

torchvision 0.28.0 is built for torch 2.13.0, but its compiled operators (``torchvision::nms`` and
friends) do not load beside the CPU build of torch on these machines: importing ``torchvision``
runs ``torchvision._meta_registrations``, which registers fake kernels for those operators and fails
because they do not exist. The model definitions are pure Python and need none of them, so we put an
empty module in that slot before the import. ``torchvision.ops`` stays unusable; the detection ops
are checked against loop references instead.
"""

from __future__ import annotations

import sys
import types


def torchvision_models() -> types.ModuleType:
    """Import and return ``torchvision.models`` (the pure-Python part of torchvision)."""
    sys.modules.setdefault("torchvision._meta_registrations",
                           types.ModuleType("torchvision._meta_registrations"))
    import torchvision.models

    return torchvision.models
