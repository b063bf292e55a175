"""jaxunlearn: machine unlearning for image classifiers in JAX.

The functional API: ``jaxunlearn.run.run(config, workdir)`` for the whole job
(any task: ``tasks.TASKS``), or the pieces: ``data.load_dataset``,
``data.splits.make_forget_split``, ``models.get_model``, ``train.train_model``,
``methods.METHODS.get(name).unlearn(task, config, key) -> (variables,
stats)``, ``metrics.evaluators.evaluate(EvalContext(...), names)``.
"""
__version__ = "0.1.0"
