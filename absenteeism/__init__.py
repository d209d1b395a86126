"""The shared core: one feature module, one raw schema, and what both the batch job and the server
need to run them the same way (config I/O, converters, online paths, parity)."""
