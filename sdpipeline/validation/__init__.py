"""Validation: the row contract (pandera), the dataset contract (Great Expectations) and the
audit trail."""
