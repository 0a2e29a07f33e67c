"""Pure-torch model families; each records its relation tensors when a recorder is active."""
