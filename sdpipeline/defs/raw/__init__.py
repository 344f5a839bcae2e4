"""The raw layer's assets."""
