"""The pieces of a training run, which `anno_mlx.train.train` joins: its settings
(`settings`), the data it learns from (`data`), one optimisation step per backend (`steps`) and
the state an interrupted run resumes from (`state`)."""
