"""Generated from protos/penguins/v1 by tools/generate_stubs.py."""
