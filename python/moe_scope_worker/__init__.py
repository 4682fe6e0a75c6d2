"""MoE Scope's PyTorch inference worker: the same request/response protocol as the ONNX Runtime
inference process (src/shared/protocol.ts), spoken over stdin/stdout with length-prefixed frames.
Run as `python -m moe_scope_worker` with PYTHONPATH pointing at the repository's python/ folder."""
