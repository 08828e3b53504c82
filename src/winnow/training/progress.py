"""The training progress line: one Rich bar through the whole run, moved by the run's own
progress (steps or elapsed budget, whichever is further: `training.schedule`), with the
epoch out of the planned ones, the last loss, the latest validation macro-F1 beside the
validation size, and the time left in the budget."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import ProgressBar

REFRESH_SECONDS = 0.5
TICKS = 1000


class BudgetProgressBar(ProgressBar):
    def __init__(self, planned_epochs: float, val_items: int) -> None:
        super().__init__()
        self.planned_epochs = planned_epochs
        self.val_items = val_items
        self._enabled = True
        self._bar = None
        self._task = None
        self._shown = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, module) -> None:
        if not self._enabled or trainer.global_rank != 0:
            return
        from rich.progress import BarColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("training"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[status]}"),
        )
        self._bar.start()
        self._task = self._bar.add_task("training", total=TICKS, status="")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self._bar is None or time.perf_counter() - self._shown < REFRESH_SECONDS:
            return
        self._shown = time.perf_counter()
        self._bar.update(
            self._task, completed=self._ticks(trainer, module), status=self.status(trainer, module)
        )

    def on_validation_end(self, trainer, module) -> None:
        if self._bar is not None and not trainer.sanity_checking:
            self._bar.update(self._task, status=self.status(trainer, module))

    def on_train_end(self, trainer, module) -> None:
        if self._bar is not None:
            status = self.status(trainer, module, finished=True)
            self._bar.update(self._task, completed=TICKS, status=status)
            self._bar.stop()
            self._bar = None

    def on_exception(self, trainer, module, exception) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _ticks(self, trainer, module) -> int:
        return int(TICKS * module.schedule.progress(int(trainer.global_step)))

    def expected_epochs(self, trainer, module) -> float:
        """The plan's epochs, re-estimated from the run's progress once a tenth is done: a
        run on a time budget trains as many epochs as the machine's speed allows (a plan
        timed while another job ran can be half of what the run then trains)."""
        progress = module.schedule.progress(int(trainer.global_step))
        batches = trainer.num_training_batches
        if progress < 0.1 or not batches or batches == float("inf"):
            return self.planned_epochs
        return trainer.global_step / batches / progress

    def status(self, trainer, module, finished: bool = False) -> str:
        """`epoch 12/~140 · loss 0.912 · val macro-F1 0.412 (708 items) · 3:12 left`: the
        epoch under way, or once finished the epochs done."""
        epoch = trainer.current_epoch if finished else trainer.current_epoch + 1
        total = epoch if finished else max(epoch, round(self.expected_epochs(trainer, module)))
        parts = [f"epoch {epoch}/{'' if finished else '~'}{max(1, total)}"]
        loss = trainer.callback_metrics.get("loss")
        if loss is not None:
            parts.append(f"loss {float(loss):.3f}")
        if module.history:
            parts.append(
                f"val macro-F1 {module.history[-1]['val_macro_f1']:.3f} ({self.val_items} items)"
            )
        schedule = module.schedule
        if schedule.budget:
            left = max(0.0, schedule.budget - schedule.elapsed())
            parts.append(f"{int(left // 60)}:{int(left % 60):02d} left")
        return " · ".join(parts)
