"""Utilities of ``deepnotes.nn`` (as ``torch.nn.utils``): ``rnn`` holds the packed-sequence helpers.

    from deepnotes.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
"""

from . import rnn
from .clip_grad import (  # gradient clipping, as torch.nn.utils.clip_grad
    clip_grad_norm,
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
)
from .weight_norm import remove_weight_norm, weight_norm  # w = g v / ||v||
