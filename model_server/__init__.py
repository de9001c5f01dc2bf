"""Model server launcher: configuration → validated settings → `vllm serve` argv → exec."""
