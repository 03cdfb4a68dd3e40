"""Studies of trained models on the synthetic data: the accuracy table with its scan-order probe (``table.py``,
``run_eval.py table``), many trainings at once (``many.py``, ``run_eval.py train-many``) and the tiny vision
tower's shape-presence probe (``probe.py``, ``python -m qmamba_eval.study.probe``). Every evaluation goes through
the ``Runner`` (``--data synthetic:<split>:<scale>``), so its answers are those a run would give."""
