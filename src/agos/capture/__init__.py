"""Capture the sparsity of a real training step: masks, the rules behind them, the trace store."""
