"""ONNX export (torch) and its verification; the options below import without torch (the CLI lists
them in --help)."""

OPSETS = range(11, 18)  # 11..17; 12 is the seed's (and the official models') opset
PRECISIONS = ("float32", "float16")
