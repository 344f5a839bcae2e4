"""The Dagster layer: thin asset factories over the codebook; the logic lives in plain modules."""
