"""CRNN text recognition (Shi, Bai & Yao 2015, arXiv:1507.05717) and the PP-OCR stride changes
(Du et al. 2020, arXiv:2009.09941; notes 003 "PPOCR识别部分，相比crnn做了哪些改进").

A text line is a sequence, so the model reads it as one: a convolutional stack turns the image
(height 32) into a feature map of height 1, each of its columns describes a narrow vertical strip
of the image (a "frame"); a bidirectional LSTM reads the frames left to right and right to left
so each frame sees its context; a linear layer gives per-frame class scores over the alphabet
plus a *blank*. Training uses CTC (``F.ctc_loss``): the loss sums the probability of every
frame-level path that collapses (merge repeats, drop blanks) to the target text, so no
character-level alignment or segmentation is needed. Decoding: best class per frame, collapse.

    image (N, C, 32, W) -> cnn -> (N, 512, 1, T) -> (T, N, 512) -> BiLSTM x2 -> (T, N, 2H)
                        -> linear -> (T, N, num_classes)          log_softmax -> ctc_loss

Downsampling. Characters are much narrower than they are tall, so width must keep more
resolution than height: the height goes 32 -> 1 (five halvings) while the width shrinks only by
about 4, giving T ~ W/4 frames (26 for a 32x100 image in the paper's configuration).

    conv (3x3, BN, ReLU)   classic CRNN (Shi et al.)           PP-OCR style (``ppocr=True``)
    conv0  64              pool (2,2)         16 x W/2         pool (2,2)        16 x W/2
    conv1  128             pool (2,2)          8 x W/4         pool (2,1)         8 x W/2
    conv2, conv3  256      pool (2,1)*         4 x W/4+1       none (1,1)         8 x W/2
    conv4, conv5  512      pool (2,1)*         2 x W/4+2       pool (2,1)         4 x W/2
    conv6  512             2x2 conv, no pad    1 x W/4+1       stride (2,1)       2 x W/2
                                                               max pool (2,2)     1 x W/4
    (* 2x2 window, stride (2,1), width padding 1, as in the original Torch code)

The PP-OCR changes are the three in the notes: a (2,2) downsampling becomes (2,1), keeping
horizontal detail; the next downsampling becomes (1,1), keeping vertical detail through the
middle stages (the height is halved later instead); and a final (2,2) max pool brings the map to
height 1 and the sequence back to the classic length ~W/4. (PP-OCR applies them to a
MobileNetV3 backbone; here they are applied to CRNN's VGG-style stack so that the two
schedules can be compared layer by layer.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import nn
from ..tensor import Tensor

#: Channels of the seven convolutions of the paper.
CRNN_CHANNELS = (64, 128, 256, 256, 512, 512, 512)


def _conv_bn_relu(c_in: int, c_out: int, kernel_size: int = 3, stride: Any = 1,
                  padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CRNN(nn.Module):
    """Conv stack -> BiLSTM -> per-frame classifier.

    Args:
        num_classes: alphabet size + 1 (class 0 is the CTC blank).
        in_channels: 1 for grey images, 3 for colour.
        channels: widths of the seven convolutions (default: the paper's).
        hidden_size: LSTM hidden size per direction.
        num_lstm_layers: stacked bidirectional LSTM layers (the paper uses 2).
        ppocr: use the PP-OCR downsampling schedule (see the module docstring).

    Shape:
        input (N, in_channels, 32, W) -> logits (T, N, num_classes), T = W/4 + 1 (classic,
        W divisible by 4) or W/4 (PP-OCR, W divisible by 4). Feed ``logits.log_softmax(2)``
        to ``F.ctc_loss`` with ``input_lengths`` = T.
    """

    img_height = 32

    def __init__(self, num_classes: int, in_channels: int = 1,
                 channels: tuple[int, ...] = CRNN_CHANNELS, hidden_size: int = 256,
                 num_lstm_layers: int = 2, ppocr: bool = False):
        super().__init__()
        if len(channels) != 7:
            raise ValueError(f"CRNN: channels must give 7 widths, got {len(channels)}")
        c0, c1, c2, c3, c4, c5, c6 = channels
        self.ppocr = ppocr
        layers = _conv_bn_relu(in_channels, c0) + [nn.MaxPool2d(2, 2)]
        layers += _conv_bn_relu(c0, c1)
        layers += [nn.MaxPool2d((2, 1), (2, 1))] if ppocr else [nn.MaxPool2d(2, 2)]
        layers += _conv_bn_relu(c1, c2) + _conv_bn_relu(c2, c3)
        if not ppocr:  # PP-OCR: this downsampling becomes (1, 1)
            layers += [nn.MaxPool2d(2, (2, 1), (0, 1))]
        layers += _conv_bn_relu(c3, c4) + _conv_bn_relu(c4, c5)
        layers += [nn.MaxPool2d((2, 1), (2, 1)) if ppocr else nn.MaxPool2d(2, (2, 1), (0, 1))]
        if ppocr:
            layers += _conv_bn_relu(c5, c6, 3, (2, 1), 1) + [nn.MaxPool2d(2, 2)]
        else:
            layers += _conv_bn_relu(c5, c6, 2, 1, 0)
        self.cnn = nn.Sequential(*layers)
        self.rnn = nn.LSTM(c6, hidden_size, num_layers=num_lstm_layers, bidirectional=True)
        self.fc = nn.Linear(2 * hidden_size, num_classes)

    def sequence_length(self, width: int) -> int:
        """T, the number of frames for an input of width ``width``."""
        if self.ppocr:
            return width // 2 // 2
        return width // 2 // 2 + 1  # two padded (2,1) pools (+1 each), then the 2x2 conv (-1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[2] != self.img_height:
            raise ValueError(f"CRNN expects (N, C, {self.img_height}, W) images, got shape "
                             f"{tuple(x.shape)}")
        features = self.cnn(x)                              # (N, C6, 1, T)
        n, c, h, t = features.shape
        frames = features.reshape(n, c, t).permute(2, 0, 1)  # (T, N, C6)
        context, _ = self.rnn(frames)                       # (T, N, 2H)
        return self.fc(context)                             # (T, N, num_classes)


def ctc_greedy_decode(logits: Any, blank: int = 0) -> list[list[int]]:
    """Best path decoding: the best class per frame, repeats merged, blanks dropped.

    Args:
        logits: (T, N, C) scores (or log-probabilities) per frame.

    Returns:
        One list of class indices per sequence in the batch.
    """
    scores = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
    best = scores.argmax(axis=2).T                          # (N, T)
    decoded = []
    for path in best:
        keep = np.ones(len(path), dtype=bool)
        keep[1:] = path[1:] != path[:-1]                    # first frame of each run
        decoded.append([int(c) for c in path[keep] if c != blank])
    return decoded


def crnn(num_classes: int = 37, **kwargs: Any) -> CRNN:
    """CRNN (Shi et al. 2015) for 32xW grey text lines; 37 classes = blank + 0-9 + a-z."""
    return CRNN(num_classes, **kwargs)


def crnn_ppocr(num_classes: int = 37, **kwargs: Any) -> CRNN:
    """CRNN with the PP-OCR downsampling schedule (see the module docstring)."""
    return CRNN(num_classes, ppocr=True, **kwargs)
