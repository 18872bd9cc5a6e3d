"""Losses and metrics named by the `Loss function` and `Metric` properties, over logits and dataset targets.

Targets: class indexes (classification), multi-hot rows (multi-label), class-index maps (segmentation; 0/1 for a
binary mask read by a one-channel network), feature rows (regression). Metrics return a batch mean.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from fovea.core.predictions import Task

Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

HIGHER_IS_BETTER = {"accuracy": True, "dice": True}  # the error metrics improve downwards


def _probabilities(logits: torch.Tensor, task: Task) -> torch.Tensor:
    """Per-class probabilities; a one-channel segmentation network is binary (sigmoid)."""
    if task is Task.MULTILABEL or (task is Task.SEGMENTATION and logits.shape[1] == 1):
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)


def _one_hot(target: torch.Tensor, logits: torch.Tensor, task: Task) -> torch.Tensor:
    """Targets in the shape of the logits."""
    if task in (Task.MULTILABEL, Task.REGRESSION):
        return target.float()
    if task is Task.SEGMENTATION:
        if logits.shape[1] == 1:
            return target.unsqueeze(1).float()
        return F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    return F.one_hot(target, logits.shape[1]).float()


def _dice(probabilities: torch.Tensor, hot: torch.Tensor) -> torch.Tensor:
    """Mean soft dice over the foreground channels (all channels but 0 when there are several)."""
    if probabilities.shape[1] > 1:
        probabilities, hot = probabilities[:, 1:], hot[:, 1:]
    dims = tuple(range(2, probabilities.ndim)) if probabilities.ndim > 2 else (0,)
    overlap = (probabilities * hot).sum(dims)
    total = probabilities.sum(dims) + hot.sum(dims)
    return ((2 * overlap + 1e-6) / (total + 1e-6)).mean()


def loss_function(name: str, task: Task) -> Fn:
    def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if task is Task.MULTILABEL or (task is Task.SEGMENTATION and logits.shape[1] == 1):
            return F.binary_cross_entropy_with_logits(logits, _one_hot(target, logits, task))
        return F.cross_entropy(logits, target)

    def binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, _one_hot(target, logits, task))

    def mean_squared_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if task is Task.REGRESSION:
            return F.mse_loss(logits, target)
        return F.mse_loss(_probabilities(logits, task), _one_hot(target, logits, task))

    def dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1 - _dice(_probabilities(logits, task), _one_hot(target, logits, task))

    losses = {
        "cross_entropy": cross_entropy,
        "softmax_cross_entropy": cross_entropy,
        "binary_cross_entropy": binary_cross_entropy,
        "mean_squared_error": mean_squared_error,
        "dice": dice,
    }
    return losses[name]


def metric_function(name: str, task: Task) -> Fn:
    @torch.no_grad()
    def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if task is Task.MULTILABEL:
            return ((logits > 0).float() == target).float().mean()
        if task is Task.SEGMENTATION and logits.shape[1] == 1:
            return ((logits[:, 0] > 0).long() == target).float().mean()
        return (logits.argmax(1) == target).float().mean()

    @torch.no_grad()
    def dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probabilities = _probabilities(logits, task)
        if probabilities.shape[1] == 1:
            hard = (probabilities > 0.5).float()
        else:
            hard = F.one_hot(probabilities.argmax(1), probabilities.shape[1]).movedim(-1, 1).float()
        return _dice(hard, _one_hot(target, logits, task))

    @torch.no_grad()
    def mean_squared_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(_prediction(logits), _one_hot(target, logits, task))

    @torch.no_grad()
    def mean_absolute_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(_prediction(logits), _one_hot(target, logits, task))

    @torch.no_grad()
    def mean_relative_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        truth = _one_hot(target, logits, task)
        return ((_prediction(logits) - truth).abs() / truth.abs().clamp_min(1e-6)).mean()

    def _prediction(logits: torch.Tensor) -> torch.Tensor:
        return logits if task is Task.REGRESSION else _probabilities(logits, task)

    metrics = {
        "accuracy": accuracy,
        "dice": dice,
        "mean_squared_error": mean_squared_error,
        "mean_absolute_error": mean_absolute_error,
        "mean_relative_error": mean_relative_error,
    }
    return metrics[name]
