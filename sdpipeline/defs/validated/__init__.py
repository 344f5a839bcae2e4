"""The validated layer's assets."""
