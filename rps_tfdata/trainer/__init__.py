"""The trainer: `training.train_and_evaluate` and what it calls (settings, plan, data
sources, the custom loop, a run's folder, state and end), on the library's passes
(`inputs`)."""
