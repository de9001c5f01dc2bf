"""Benchmarks: what the microservice costs in front of vLLM, measured side by side."""
