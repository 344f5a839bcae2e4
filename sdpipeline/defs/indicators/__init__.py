"""The indicators layer's assets."""
