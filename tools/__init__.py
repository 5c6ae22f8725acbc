"""Commands that make and check what the project ships (benchmarks of speed live in `bench/`):

    python -m tools.quality [--model NAME] [--retrain] [--ship]   # test figures, retraining and model cards
    python -m tools.cxr3class_audit                               # the 3-class data set's label audit
"""
