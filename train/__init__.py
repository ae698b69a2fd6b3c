"""Training, evaluation and export of the person-segmentation model."""
