"""Workloads: the layer graph with shape inference, the zoo, and ONNX import.
"""
