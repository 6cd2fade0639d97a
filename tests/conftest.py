"""Settings for the whole test session.

Training runs default to an offline wandb run (issue 4). The suite starts dozens of tiny runs,
and each would spawn wandb's service process, so wandb is switched off here through
``WANDB_MODE`` (which subprocesses inherit); ``test_training.py`` lifts it for the test that
checks a real offline run.
"""

import os

os.environ["WANDB_MODE"] = "disabled"
