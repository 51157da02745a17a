"""The benchmark models, written once for both frameworks.

deepnotes' ``nn`` has PyTorch's names, signatures and state_dict keys, so each builder below takes
the ``nn`` module to use (``deepnotes.nn`` or ``torch.nn``) and builds the same network from it.
The two copies have identical parameter names; ``copy_weights`` makes their values identical too.
"""

from __future__ import annotations

from typing import Any


def lenet5(nn: Any) -> Any:
    """LeNet-5 for 1x28x28 input: conv 1->6 k5, relu, maxpool 2, conv 6->16 k5, relu, maxpool 2,
    then 256-120-84-10 (notes 002 Q1)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),        # (N, 6, 12, 12)
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),       # (N, 16, 4, 4)
        nn.Flatten(),                                          # (N, 256)
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def mlp(nn: Any) -> Any:
    """The 784-512-512-10 ReLU MLP."""
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def resnet18_cifar(nn: Any, num_classes: int = 10) -> Any:
    """CIFAR ResNet-18 (He et al. 2016, notes 002 Q5): a 3x3 stem with no max-pool, four stages of
    two basic blocks with 64/128/256/512 channels (stride 2 at the start of stages 2-4), batch
    norm after every convolution, 1x1 conv + BN shortcuts where the shape changes, global average
    pooling and a 512->10 classifier. 11.17 M parameters."""

    class BasicBlock(nn.Module):
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.relu = nn.ReLU()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                              nn.BatchNorm2d(c_out))
            else:
                self.shortcut = nn.Identity()

        def forward(self, x: Any) -> Any:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + self.shortcut(x))

    def stage(c_in: int, c_out: int, stride: int) -> Any:
        return nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1))

    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),  # (N, 64, 32, 32)
        stage(64, 64, 1),                                                     # (N, 64, 32, 32)
        stage(64, 128, 2),                                                    # (N, 128, 16, 16)
        stage(128, 256, 2),                                                   # (N, 256, 8, 8)
        stage(256, 512, 2),                                                   # (N, 512, 4, 4)
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),                                # (N, 512)
        nn.Linear(512, num_classes),
    )


def copy_weights(dn_model: Any, torch_model: Any) -> None:
    """Load deepnotes' initial parameters and buffers into the torch model, key by key."""
    import numpy as np
    import torch

    state = {k: torch.from_numpy(np.array(v.data)) for k, v in dn_model.state_dict().items()}
    torch_model.load_state_dict(state)
