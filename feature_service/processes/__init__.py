"""How the server runs as processes: signals, JSON logs, and the supervisor of --processes N.

Kept free of imports here: `python -m feature_service` loads the signal handlers from this package
before anything heavy, so that a SIGTERM during the boot is a graceful stop."""
