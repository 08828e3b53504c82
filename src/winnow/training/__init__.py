"""Stage 4, `winnow train`: from scratch, on the pixel cache, with Lightning for the loop.

Modules: config (TrainConfig), data (rows and batches from the cache), imbalance,
augment, module (the LightningModule), planner (the time budget as a step plan), trainer
(Lightning's Trainer, devices, precision), loop (the run), callbacks, report. Importing this
package does not import Lightning (a run does).
"""

from winnow.lazy import lazy_exports

EXPORTS = {
    "TrainConfig": "config",
    "TrainError": "loop",
    "TrainResult": "loop",
    "train": "loop",
}
__all__ = sorted(EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
