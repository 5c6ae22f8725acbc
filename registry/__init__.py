"""The SQL registry shared by the API and the workers: datasets, jobs, runs, metrics, checkpoints,
model versions and aliases, plus the artifact store their files live in.

It knows neither torch nor `ml/`: rows leave this package as plain records (`registry.records`).
"""
