"""Training recipes for the classifiers (needs the [torch] and [train] extras)."""
