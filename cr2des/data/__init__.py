"""The tensor data path: images and other inputs, weights (state dicts, .npz, ONNX,
synthetic), quantization, the reference executor and memory budgets.
"""
