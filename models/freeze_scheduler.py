"""Freeze and thaw submodules on a schedule of epochs or optimizer steps."""

from __future__ import annotations

import bisect
import itertools

from config.schema import FreezeSchedulerConfig
from models.pipeline import SignPipeline


class FreezeScheduler:
    """Applies `freeze_scheduler.model_params` to a pipeline.

    Pattern i (one boolean per listed module, True = frozen) holds for
    `freeze_pattern_repeats[i]` epochs or optimizer steps; after the last pattern every
    listed module is unfrozen.

    Args:
        pipeline: the model whose submodules are toggled.
        config: the `freeze_scheduler` section.
        printer: where `verbose` messages go.
    """

    def __init__(
        self, pipeline: SignPipeline, config: FreezeSchedulerConfig, printer=print
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.printer = printer
        for name in config.model_params:
            pipeline.submodule(name)  # fails early, naming the unknown module
        self._ends = list(itertools.accumulate(config.freeze_pattern_repeats))
        self._applied: dict[str, bool] | None = None

    @property
    def mode(self) -> str:
        """`epoch` or `step`."""
        return self.config.freeze_mode

    def state_at(self, index: int) -> dict[str, bool]:
        """Module name -> frozen, at epoch or step `index` (0-based)."""
        pattern = bisect.bisect_right(self._ends, index)
        return {
            name: pattern < len(self._ends) and flags[pattern]
            for name, flags in self.config.model_params.items()
        }

    def apply(self, index: int) -> dict[str, bool]:
        """Bring the pipeline to the state at `index`; returns that state."""
        state = self.state_at(index)
        # Unfreeze first so a frozen child inside a thawed parent stays frozen.
        for frozen in (False, True):
            for name, value in state.items():
                if value is frozen:
                    self.pipeline.set_frozen(name, value)
        if state != self._applied and self.config.verbose:
            described = ", ".join(
                f"{name}={'frozen' if value else 'trainable'}"
                for name, value in state.items()
            )
            self.printer(f"freeze scheduler at {self.mode} {index}: {described}")
        self._applied = state
        return state
