"""segkit runtime: torch-free inference on exported models (ONNX Runtime / TensorRT).

`runtime.metadata` holds the schema of the metadata every exported model carries (ONNX
`metadata_props`, or the `model.engine.json` sidecar of a TensorRT engine), and
`runtime.preprocess` the numpy preprocessing that matches training. Nothing here imports
torch or `export`.
"""
