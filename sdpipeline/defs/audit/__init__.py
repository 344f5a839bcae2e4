"""The audit layer's assets."""
