"""The SDK's version (recorded in every bundle and build key)."""
__version__ = "0.1.0"
