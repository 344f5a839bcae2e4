"""The report layer's assets."""
