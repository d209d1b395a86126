"""Test and benchmark helpers (a dev package, not shipped in the wheel): the real server as a
subprocess, throwaway TLS certificates, a Dask cluster of real processes, process signals."""
