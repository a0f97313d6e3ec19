"""Parley's behaviour: every query and rule lives here, free of web types."""
