"""Real vLLM and microservice processes on loopback, for the tests and the benchmark alike.

Not part of any image: it starts servers, waits for their health and stops them by PID.
"""
