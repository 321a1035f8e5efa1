"""Training: batching, the answer-only loss, the compiled step, the trial runner."""
