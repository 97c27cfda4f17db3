"""The paper's evaluations of a trained model (probe grid, alignment/uniformity, noise-conditional
classifier, fine-tuning, classification), plus sampling and importing official checkpoints."""
