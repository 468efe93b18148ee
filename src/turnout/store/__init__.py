"""The request record."""
