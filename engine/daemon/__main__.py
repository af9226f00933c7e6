"""`python -m engine.daemon`: the driver process.

Ray is started first, in a background thread (`engine.runtime.ray_boot`), so its start overlaps
the daemon's own imports (several seconds: the strategy stack), config, DB and venue reads. The
start-up clock starts here too, with the process's age as its `imports` phase. The daemon's own
imports wait for Ray's (`RayBoot.wait_preloaded`): Ray's start is the longer path.
"""

import os
import sys

from engine.runtime.ray_boot import start_ray_boot
from engine.runtime.startup_timeline import StartupTimeline, process_age_secs

timeline = StartupTimeline(age=process_age_secs())
boot = start_ray_boot(os.environ)
if boot is not None:  # `import ray` first, alone: both imports at once share one GIL (ray_boot)
    boot.wait_preloaded(timeout=60.0)

from engine.daemon.cli import main  # noqa: E402  (after the Ray start: these imports take seconds)

sys.exit(main(ray_boot=boot, timeline=timeline))
