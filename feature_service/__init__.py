"""The gRPC prediction server: boots from a verified ServingConfig and serves absenteeism.v1.PredictionService.

The core, here: settings (flags + environment), predictor_registry (--predictor -> class),
verified_config (a config is served only once verified through its predictor), serving_state (the
one swappable config + predictor), config_reloader (SIGHUP / a new file swaps it), command_line
(`python -m feature_service serve`). The wings, one concern each:
- rpc/: the gRPC face: prediction_server (PredictionServer: start()/stop(grace)), prediction_servicer
  (convert, delegate), status_mapping (exceptions -> status codes at one boundary), streaming,
  micro_batching, health (+ reflection), tls, interceptors/;
- monitoring/: metrics (Prometheus), drift_window, prediction_logger, monitored_predictor (the glue);
- processes/: lone_server (one process's life, exit codes), supervisor (--processes N),
  supervised_child (a child's entry), process_signals.
"""
