"""Serving a finished run: a model, its classes and how its images are read, exported as
a SavedModel or a TFLite model, and files classified by an export; nothing of how the
model was trained."""
