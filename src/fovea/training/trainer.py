"""The training loop: epochs of training batches, a validation pass, progress lines, checkpoints, stop.

It knows nothing of the database: the job gives it `report` (writes a progress line), `check_stop` (called
before every batch; raises to stop, so a stop takes effect within one batch) and `checkpoint` (exports the
network). Progress lines follow backend-api.md §9 exactly; `loss` and `metric` are running means over the batches
done so far in the current pass, and the last partial batch is trained on, never dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fovea.core.predictions import Task
from fovea.training.losses import HIGHER_IS_BETTER, loss_function, metric_function

REPORT_EVERY_S = 0.5  # a progress line at most this often within a pass, plus the pass's last batch


@dataclass(frozen=True, slots=True)
class Hyperparameters:
    epochs: int
    batch_size: int
    learning_rate: float
    loss: str
    metric: str


@dataclass(slots=True)
class EpochResult:
    epoch: int
    train_loss: float
    train_metric: float
    val_loss: float | None = None
    val_metric: float | None = None


class Trainer:
    def __init__(
        self,
        network: nn.Module,
        task: Task,
        hp: Hyperparameters,
        *,
        report: Callable[[str], None],
        check_stop: Callable[[], None],
        checkpoint: Callable[[nn.Module, EpochResult], None],
        seed: int = 0,
    ) -> None:
        self.network, self.task, self.hp = network, task, hp
        self.report, self.check_stop, self.checkpoint = report, check_stop, checkpoint
        self.loss_fn = loss_function(hp.loss, task)
        self.metric_fn = metric_function(hp.metric, task)
        self.higher_is_better = HIGHER_IS_BETTER.get(hp.metric, False)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)

    def fit(self, training: Dataset, validation: Dataset | None) -> list[EpochResult]:
        """Train for the given epochs; checkpoint every epoch, or on a better validation metric when validating."""
        loader = DataLoader(training, self.hp.batch_size, shuffle=True, generator=self.generator)
        val_loader = DataLoader(validation, self.hp.batch_size) if validation is not None and len(validation) else None
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.hp.learning_rate)
        history: list[EpochResult] = []
        best: float | None = None
        for epoch in range(1, self.hp.epochs + 1):
            loss, metric = self._pass(loader, f"Train - epoch [{epoch}/{self.hp.epochs}]", optimizer)
            result = EpochResult(epoch, loss, metric)
            if val_loader is not None:
                result.val_loss, result.val_metric = self._pass(
                    val_loader, f"Validation - epoch [{epoch}/{self.hp.epochs}]", None
                )
            history.append(result)
            score = result.val_metric
            if score is None or best is None or (score > best if self.higher_is_better else score < best):
                best = score
                self.checkpoint(self.network, result)
        return history

    def _pass(self, loader: DataLoader, prefix: str, optimizer: torch.optim.Optimizer | None) -> tuple[float, float]:
        train = optimizer is not None
        self.network.train(train)
        batches = math.ceil(len(loader.dataset) / self.hp.batch_size)
        loss_sum = metric_sum = 0.0
        last_report = time.monotonic()
        with torch.set_grad_enabled(train):
            for b, (x, target) in enumerate(loader, start=1):
                self.check_stop()
                logits = self.network(x)
                loss = self.loss_fn(logits, target)
                if train:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                loss_sum += float(loss.detach())
                metric_sum += float(self.metric_fn(logits.detach(), target))
                if b == batches or time.monotonic() - last_report >= REPORT_EVERY_S:
                    last_report = time.monotonic()
                    means = f"loss={loss_sum / b:.3f} - metric={metric_sum / b:.3f}"
                    self.report(f"{prefix} - batch [{b}/{batches}] - {means}")
        return loss_sum / batches, metric_sum / batches
