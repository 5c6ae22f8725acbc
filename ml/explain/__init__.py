"""Explanations of model outputs: class activation maps (`ml.explain.gradcam`)."""
