"""What the service tells its operators: JSON logs carrying the request id, Prometheus metrics
in the app's own registry, and OpenTelemetry traces that continue the client's and reach vLLM."""
