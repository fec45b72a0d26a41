"""A Hydra callback for the sweep tests: writes what each multirun job returned to ``<job folder>/returned.json``."""

import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback

RETURNED_FILE = "returned.json"


class RecordReturn(Callback):
    def on_job_end(self, config, job_return, **kwargs) -> None:
        value = job_return.return_value if job_return.status == JobStatus.COMPLETED else "failed"
        Path(HydraConfig.get().runtime.output_dir, RETURNED_FILE).write_text(json.dumps(value))
