"""One-shot FP8 calibration job (Intel Neural Compressor) whose output vLLM loads on Gaudi."""
