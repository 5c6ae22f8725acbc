"""The contract between the API (which sends tasks by name) and the workers (which define them)."""

TRAIN_TASK = "cxr.train"
EVALUATE_TASK = "cxr.evaluate"
TRAINING_QUEUE = "training"
EVALUATION_QUEUE = "evaluation"
