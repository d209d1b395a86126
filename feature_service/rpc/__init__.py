"""The gRPC face: the server's wiring, the servicer, the one boundary from exceptions to status
codes, streaming and micro-batching, health and reflection, TLS, and the interceptors."""
