"""Pure-onnx RVM graph tools (no torch): read and label models (io), edit helpers (edit), bake the ratio
into an official model (bake), float16 conversion (fp16), the CPU fast path's low-res graph (lowres),
and ceil-mode pools in padded floor form for onnxruntime-web's WebGPU kernel (pools)."""
