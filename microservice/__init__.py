"""LLM microservice: OPEA-compatible and OpenAI-compatible front for vLLM."""
