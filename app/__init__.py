"""The HTTP service: prediction and Grad-CAM from registry models, training jobs, the registry's views."""
