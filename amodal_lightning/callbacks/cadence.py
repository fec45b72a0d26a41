"""When a validation-time evaluation callback runs: shared by the layer and the per-object panels."""

from __future__ import annotations


def is_due(step: int, last_step: int | None, every_n_steps: int | None) -> bool:
    """Whether an evaluation last run at ``last_step`` runs again at ``step``: always the first time, never twice
    at one step (the validation after training repeats the last step's with the same EMA weights), and then at
    every validation, or once at least ``every_n_steps`` steps have passed."""
    if last_step is None:
        return True
    if step == last_step:
        return False
    return every_n_steps is None or step - last_step >= every_n_steps
