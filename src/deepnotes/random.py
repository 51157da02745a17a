"""One seeded random generator for the whole library.

Every random op (dropout, randn, initialisers, DataLoader shuffling) draws from the generator
returned by :func:`default_generator`, so ``deepnotes.manual_seed(s)`` makes a run reproducible.
The generator object never changes: seeding resets its state in place, so a reference taken before
``manual_seed`` stays valid.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)
_seed = 0


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the global generator (as ``torch.manual_seed``) and return it."""
    global _seed
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise TypeError(f"manual_seed expects an int, got {type(seed).__name__}")
    _seed = int(seed)
    # Reset the state in place; negative seeds wrap around, as in torch.
    _generator.bit_generator.state = np.random.PCG64(_seed % 2**64).state
    return _generator


def initial_seed() -> int:
    """The seed last given to :func:`manual_seed` (0 if it was never called)."""
    return _seed


def default_generator() -> np.random.Generator:
    """The generator every random op draws from."""
    return _generator


def get_rng_state() -> dict:
    """The generator's state as a JSON-serialisable dict (for checkpoints and exact resume)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
