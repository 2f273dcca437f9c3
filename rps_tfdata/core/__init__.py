"""The product path: data, augmentation, model, training and a run's artifacts.

Library modules: they take plain arguments and never read flags, so a notebook, a test
or an entry point uses them alike. Importing this package does not import TensorFlow;
its modules do.
"""
