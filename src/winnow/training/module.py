"""The LightningModule: the model, the step and the metrics. Devices, precision,
checkpoints and the loop itself belong to Lightning's Trainer (see `loop.py`)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from winnow.inference.load import tta_logits
from winnow.models import create_model
from winnow.training.augment import BatchAugment
from winnow.training.config import TrainConfig
from winnow.training.imbalance import STRATEGIES
from winnow.training.schedule import BudgetSchedule, progressive_size
from winnow.training.sizing import recipe_sizes

STEP_SEED_STRIDE = 1_000_003  # distinct global seeds per (epoch, batch)


TRAIN_METRICS = ("train_acc", "train_macro_f1")  # running over an epoch, summed over processes


class ClassifierModule(L.LightningModule):
    def __init__(
        self,
        config: TrainConfig,
        classes: list[str],
        class_counts: list[int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        total_steps: int,
        meta: dict[str, Any],
    ) -> None:
        super().__init__()
        # `winnow train` resolves `auto` sizes before building the module (training.sizing);
        # a module built directly takes the recipe's
        config = recipe_sizes(config)
        self.config = config
        self.classes = classes
        self.total_steps = total_steps
        self.meta = meta  # written into every checkpoint: what inference needs
        n = len(classes)
        torch.manual_seed(config.seed)
        self.model = create_model(config.model, n, **config.model_params)
        if config.init == "torch":
            reset_to_torch_defaults(self.model)
        self.augment = BatchAugment(config, n)
        self.criterion = STRATEGIES[config.imbalance].loss(
            torch.tensor(class_counts).numpy(), config.focal_gamma, config.logit_tau
        )
        # the averaged weights are the ones validated, saved for inference and exported
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=ema_update(config.ema_decay), use_buffers=True)
            if config.ema_decay > 0
            else None
        )
        if self.ema is not None:
            self.ema.requires_grad_(False)  # updated by averaging, never by gradients
        self.schedule = BudgetSchedule(total_steps, config.warmup_fraction)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.metrics = torch.nn.ModuleDict(
            {
                f"{stage}_{name}": metric
                for stage in ("train", "val")
                for name, metric in (
                    ("acc", MulticlassAccuracy(n, average="micro")),
                    ("macro_f1", MulticlassF1Score(n, average="macro")),
                )
            }
        )
        for metric in self.metrics.values():
            metric.persistent(True)  # a mid-epoch resume continues the epoch's running scores
        self.history: list[dict[str, float]] = []  # one row per epoch, saved in checkpoints
        self.register_buffer("_train_loss", torch.zeros(2, dtype=torch.float64))  # sum, count
        self.register_buffer("_val_loss", torch.zeros(2, dtype=torch.float64))
        self.channels_last = False
        self.stream = None  # the BatchStream; told about every trained batch
        # torch.compile's wrapper of self.model for training steps (`compile_training`);
        # kept out of the module tree, so checkpoints hold the network's own names
        object.__setattr__(self, "compiled", None)

    def compile_training(self) -> None:
        """Training steps run `self.model` through torch.compile (compiled at its first
        call); evaluation and the averaged weights stay eager."""
        object.__setattr__(self, "compiled", torch.compile(self.model))

    @property
    def inference_model(self) -> torch.nn.Module:
        """The weights inference uses: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def training_size(self) -> int:
        config = self.config
        if not config.progressive_min_size:
            return config.image_size
        progress = self.schedule.progress(int(self.global_step))
        return progressive_size(
            progress, config.progressive_min_size, config.image_size, config.progressive_fraction
        )

    def _to_input(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward_loss(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One uint8 training batch → (logits, soft targets, loss): augment, model, loss.
        The training step and the budget calibration both run exactly this."""
        images, soft = self.augment(images.float().div_(255), targets)
        side = self.training_size()
        if side != images.shape[-1]:
            images = torch.nn.functional.interpolate(
                images, size=(side, side), mode="bilinear", antialias=True, align_corners=False
            )
        model = self.compiled if self.compiled is not None else self.model
        logits = model(self._to_input(images))
        return logits, soft, self.criterion(logits, soft)

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        """One uint8 evaluation batch → logits of the inference weights, averaged with the
        mirror image's when the run declares flip test-time augmentation."""
        x = self._to_input(images.float().div_(255))
        return tta_logits(self.inference_model, x, self.config.tta)

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # before any callback sees the step: a checkpoint saved after it holds this update
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets, (epoch, position) = batch
        if self.stream is not None:  # the state a checkpoint saves after this step
            self.stream.mark_trained(int(epoch), int(position))
        # every batch's randomness depends only on (seed, epoch, batch): resumes replay exactly
        torch.manual_seed(self.config.seed * STEP_SEED_STRIDE + int(epoch) * 65_537 + int(position))
        logits, soft, loss = self.forward_loss(images, targets)
        predicted = logits.argmax(dim=1)
        dominant = soft.argmax(dim=1)  # the label holding most of a mixed image
        self.metrics["train_acc"].update(predicted, dominant)
        self.metrics["train_macro_f1"].update(predicted, dominant)
        self._train_loss += torch.stack(
            [loss.detach().double() * len(targets), self._train_loss.new_tensor(len(targets))]
        )
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def setup(self, stage: str) -> None:
        if self.stream is not None and self.trainer.world_size > 1:
            self.stream.shard(self.trainer.global_rank, self.trainer.world_size)

    def validation_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        logits = self.predict_logits(images)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        predicted = logits.argmax(dim=1)
        self.metrics["val_acc"].update(predicted, targets)
        self.metrics["val_macro_f1"].update(predicted, targets)
        self._val_loss += torch.stack(
            [loss.detach().double() * len(targets), self._val_loss.new_tensor(len(targets))]
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._reset_val()
            return
        row = {
            "epoch": float(self.current_epoch + 1),
            "step": float(self.global_step),
            "seconds": round(self.schedule.elapsed(), 1),
            "image_size": float(self.training_size()),
            "lr": float(self.trainer.optimizers[0].param_groups[0]["lr"]),
            "train_loss": _mean(self._train_loss),
            "train_acc": float(self.metrics["train_acc"].compute()),
            "train_macro_f1": float(self.metrics["train_macro_f1"].compute()),
            "val_loss": _mean(self._val_loss),
            "val_acc": float(self.metrics["val_acc"].compute()),
            "val_macro_f1": float(self.metrics["val_macro_f1"].compute()),
            # how many images the train columns cover: the budget's last epoch can be a few
            # batches, whose train metrics are noise (`report.full_epochs`)
            "train_items": float(self._train_loss[1]),
        }
        self.log("val_macro_f1", row["val_macro_f1"], sync_dist=True)
        self.log("val_acc", row["val_acc"], sync_dist=True)
        self.history.append(row)
        for name in ("train_acc", "train_macro_f1"):
            self.metrics[name].reset()
        self._train_loss.zero_()
        self._reset_val()

    def _reset_val(self) -> None:
        self.metrics["val_acc"].reset()
        self.metrics["val_macro_f1"].reset()
        self._val_loss.zero_()

    def configure_optimizers(self):
        decay, no_decay = [], []
        for parameter in self.model.parameters():
            spared = parameter.ndim <= 1 and self.config.decay == "weights"
            (no_decay if spared else decay).append(parameter)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.config.lr,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule.lr_factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _several_processes(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["winnow"] = {**self.meta, "history": list(self.history)}
        checkpoint["winnow_seconds_trained"] = self.schedule.elapsed()
        if self._several_processes():
            # every process runs this (Lightning saves on all, rank 0 writes): the epoch's
            # running training scores of all of them, summed, so a resume continues them whole
            for name in TRAIN_METRICS:
                metric = self.metrics[name]
                with metric.sync_context(should_sync=True):
                    for key, value in metric.state_dict().items():
                        checkpoint["state_dict"][f"metrics.{name}.{key}"] = value.clone()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("winnow", {}).get("history", []))
        self.schedule.elapsed_before = float(checkpoint.get("winnow_seconds_trained", 0.0))
        if self._several_processes() and self.trainer.global_rank > 0:
            # rank 0 continues the summed running scores; the others start from zero, so
            # the epoch's scores (summed again at its end) count every batch once
            state = checkpoint["state_dict"]
            for key in state:
                if key.startswith(tuple(f"metrics.{name}." for name in TRAIN_METRICS)):
                    state[key] = torch.zeros_like(state[key])


def reset_to_torch_defaults(model: torch.nn.Module) -> None:
    """Every layer back to PyTorch's own initialisation (`reset_parameters`): Kaiming-uniform
    with a = √5 for convolutions and linear layers, unit scale and zero shift for norms."""
    for layer in model.modules():
        if layer is not model and hasattr(layer, "reset_parameters"):
            layer.reset_parameters()


def ema_update(decay: float):
    """AveragedModel's update: an exponential moving average whose decay warms up as
    min(decay, (1 + n) / (10 + n)) after n updates, so a short run's average is not
    dominated by its random initialisation."""

    def update(averaged: list, current: list, updates: torch.Tensor) -> None:
        n = float(updates)
        rate = 1 - min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, rate)
        else:  # BatchNorm's batch counter
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(theirs)

    return update


def _mean(total: torch.Tensor) -> float:
    return float(total[0] / total[1]) if total[1] > 0 else float("nan")
