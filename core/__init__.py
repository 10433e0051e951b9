"""gdlab's numerical core: pure numpy, no click, no mlflow.

Data flows one way: a frozen :class:`~core.config.TrainConfig` goes in,
:func:`core.training.fit` builds data, model, optimizer and penalty from it and
trains, calling back with metrics; a :class:`~core.training.TrainResult` comes out.
"""
