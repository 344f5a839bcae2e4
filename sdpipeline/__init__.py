"""sdpipeline: raw survey deliveries of the Latvian social-work evaluation study, turned into
harmonised, validated, auditable datasets of every survey wave, indicators and report tables."""

__version__ = "0.1.0"
