"""What the server tells about itself and its traffic: Prometheus metrics, drift against the
training profile, and the sampled prediction log."""
