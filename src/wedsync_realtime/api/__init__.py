"""REST management API and its schemas."""
