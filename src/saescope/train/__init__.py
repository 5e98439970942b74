"""SAE training: the loop (trainer.py), its objective, optimiser, schedule, checkpoints and logs."""

from .trainer import TrainedSAE, TrainResult, train

__all__ = ["TrainResult", "TrainedSAE", "train"]
