"""The Palmer penguins data set: its typed contract (v1/), raw schema and feature module."""
