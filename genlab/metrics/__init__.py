"""Evaluation metrics. Each one is a function declared with @register_metric
(genlab/metrics/registry.py) in the module that defines it; importing any part of
genlab.metrics imports these modules, so the registry always holds every metric, in this
order: the model metrics, those through the domain classifiers, the image metrics."""

from genlab.metrics import model_metrics  # noqa: F401  (each of these registers its metrics)
from genlab.metrics import classes  # noqa: F401, I001
from genlab.metrics import image_metrics  # noqa: F401
