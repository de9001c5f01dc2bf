"""Benchmarks: what the microservice costs in front of vLLM, measured side by side (issue 6)."""
