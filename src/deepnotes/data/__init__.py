"""Datasets, samplers and the DataLoader (``torch.utils.data`` names), plus offline datasets."""

from . import datasets, transforms
from .dataloader import (
    DataLoader,
    WorkerInfo,
    default_collate,
    default_convert,
    get_worker_info,
)
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .distributed import DistributedSampler
from .files import cifar10, fashion_mnist, mnist
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "DistributedSampler",
    "Dataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "TensorDataset",
    "datasets",
    "default_collate",
    "default_convert",
    "random_split",
    "transforms", "get_worker_info", "WorkerInfo", "mnist", "fashion_mnist", "cifar10",
]
