"""Where a training step's ingredients come from: model, weights, data."""
