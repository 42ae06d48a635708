"""What trackers (MLflow, TensorBoard, a plugin's own) receive: runs, their trials with per-epoch curves and
their seed groups with intervals, in one shape whether read from a store (``nnbench export --to``) or made
from a live run's results (the lifecycle hooks). Trackers are plugins; this package knows none of them."""
