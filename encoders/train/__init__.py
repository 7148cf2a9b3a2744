"""Training of the query tower: loss (``loss``), pair sampling (``sampler``), mined negatives
(``negatives``), configuration (``config``) and the training loop (``trainer``)."""
