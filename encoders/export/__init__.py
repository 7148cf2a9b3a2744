"""Bundle export: ONNX export, int8 quantisation, parity checks and the manifest (needs torch).

Entry point: :func:`encoders.export.bundle.export_bundle`. Importing this package itself is cheap;
the submodules import torch.
"""
