"""SmartPBX AI: an AI phone agent behind a real Asterisk PBX."""

__version__ = "0.1.0"
