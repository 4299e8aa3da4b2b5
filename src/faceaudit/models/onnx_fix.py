"""Load-time graph fixes that let onnxruntime run the int8 block-quantised OpenCV-zoo models.

onnxruntime rejects the shipped YuNet/SFace files: some ``DequantizeLinear`` nodes carry ``block_size`` and
``axis`` with a one-element scale ("block_size must be 0 for per-tensor quantization"), and SFace lists its
weight initialisers as graph inputs. Both fixes leave the numerics unchanged. The fixed copy is cached, keyed by
the original file's SHA-256, and re-checked with ``onnx.checker``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from faceaudit.models.files import cache_dir, sha256_of


def fixed_model_path(src: str | os.PathLike, *, batch_dim: bool = True) -> Path:
    """Return the path of an onnxruntime-loadable copy of ``src``, building and caching it when needed."""
    digest = sha256_of(src)
    out = cache_dir() / f"{Path(src).stem}.{digest[:16]}.ort-fixed{'-batch' if batch_dim else ''}.onnx"
    if out.is_file():
        return out
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        attrs = {a.name: a for a in node.attribute}
        if "block_size" not in attrs:
            continue
        scale = inits.get(node.input[1]) if len(node.input) > 1 else None
        if scale is None or int(np.prod(scale.dims)) != 1:
            continue
        for name in node.input[1:3]:
            init = inits.get(name)
            if init is not None and len(init.dims) > 0:
                arr = numpy_helper.to_array(init).reshape(())
                init.CopyFrom(numpy_helper.from_array(arr, name))
        keep = [a for a in node.attribute if a.name not in ("block_size", "axis")]
        del node.attribute[:]
        node.attribute.extend(keep)
    produced = {o for n in graph.node for o in n.output}
    consumed = {i for n in graph.node for i in n.input}
    real_inputs = [
        i for i in graph.input if i.name not in inits and i.name not in produced and i.name in consumed
    ]
    if len(real_inputs) != len(graph.input):
        del graph.input[:]
        graph.input.extend(real_inputs)
    if batch_dim:
        for value in list(graph.input) + list(graph.output):
            dims = value.type.tensor_type.shape.dim
            if dims:
                dims[0].ClearField("dim_value")
                dims[0].dim_param = "batch"
    onnx.checker.check_model(model)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    os.close(fd)
    onnx.save(model, tmp)
    os.replace(tmp, out)
    return out
