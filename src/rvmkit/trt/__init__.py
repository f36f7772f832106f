"""TensorRT deployment tools without torch: readiness check (check, shapes, trt_ops.json), optimization
profiles (profile) and engine building (engine). Only `engine` imports TensorRT, and only when building."""
