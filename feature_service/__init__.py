"""The gRPC prediction server: boots from a verified ServingConfig and serves absenteeism.v1.PredictionService.

Modules, one job each: settings (flags + environment), predictors (the registry of online paths),
servicer (convert, delegate), errors (the one boundary that maps exceptions to status codes),
metrics (Prometheus + the interceptor), health (health + reflection wiring), shutdown (signals),
logs (JSON logs), tls (credentials, checked before binding), server (PredictionServer:
start()/stop(grace)), __main__ (the CLI).
"""
