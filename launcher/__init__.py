"""The operator's launcher (``python -m launcher``, which ``run_vllm.sh`` execs): it reads both
services' settings and its own once, plans the vLLM replicas, then either builds the Docker
Compose command and execs it, or starts the services as local processes and supervises them.

It is the one package that knows both services: it imports their settings, and no service
imports it.
"""
