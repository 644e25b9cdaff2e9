"""The HTTP layer: the only code that touches request and response types."""
