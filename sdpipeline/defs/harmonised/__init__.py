"""The harmonised layer's assets."""
