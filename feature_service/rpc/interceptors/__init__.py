"""The server's interceptors, each wrapping every method once: call metrics, the stream limit, and
the guard that turns undecodable request bytes into INVALID_ARGUMENT."""
