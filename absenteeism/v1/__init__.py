"""Generated from protos/absenteeism/v1 by tools/generate_stubs.py."""
