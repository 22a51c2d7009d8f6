"""online_models."""
