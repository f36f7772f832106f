BACKENDS = ("onnxruntime", "openvino", "torch", "tensorrt")
