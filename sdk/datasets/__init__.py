"""Training and evaluation data: crop sets cut by the pipeline, semi-synthetic masks."""
