"""The reference layer's assets."""
