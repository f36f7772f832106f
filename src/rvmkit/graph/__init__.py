"""Pure-onnx RVM graph tools (no torch): read and label models (io), edit helpers (edit), bake the ratio
into an official model (bake), float16 conversion (fp16) and the CPU fast path's low-res graph (lowres)."""
