"""The hand-derived primitives, one file per family.

Each op is an ``XxxFn(Function)`` class with its forward formula and backward derivation in the
docstring, next to a lowercase wrapper with PyTorch's signature that checks its arguments.
"""
