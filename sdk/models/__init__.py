"""Framework model definitions (PyTorch). Imported only when a model is built."""
