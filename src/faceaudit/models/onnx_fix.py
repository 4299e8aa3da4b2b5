"""Load-time graph fixes that let onnxruntime and OpenVINO run the int8 block-quantised OpenCV-zoo models.

onnxruntime rejects the shipped YuNet/SFace files: some ``DequantizeLinear`` nodes carry ``block_size`` and
``axis`` with a one-element scale ("block_size must be 0 for per-tensor quantization"), and SFace lists its
weight initialisers as graph inputs. OpenVINO rejects the per-block scales, so it gets a copy whose weights are
already dequantised. None of these changes the numerics. Each derived copy is cached, keyed by the original
file's SHA-256, and re-checked with ``onnx.checker``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from faceaudit.models.files import cache_dir, sha256_of


def _derived(src: str | os.PathLike, tag: str, transform: Callable) -> Path:
    """The cached copy of ``src`` that ``transform`` (which edits an ``onnx.ModelProto`` in place) produces."""
    out = cache_dir() / f"{Path(src).stem}.{sha256_of(src)[:16]}.{tag}.onnx"
    if out.is_file():
        return out
    import onnx

    model = onnx.load(str(src))
    transform(model)
    onnx.checker.check_model(model)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    os.close(fd)
    onnx.save(model, tmp)
    os.replace(tmp, out)
    return out


def _keep_real_inputs(graph, inits) -> None:
    """Drop graph inputs that are initialisers, produced by a node, or never consumed."""
    produced = {o for n in graph.node for o in n.output}
    consumed = {i for n in graph.node for i in n.input}
    real = [i for i in graph.input if i.name not in inits and i.name not in produced and i.name in consumed]
    if len(real) != len(graph.input):
        del graph.input[:]
        graph.input.extend(real)


def _free_dims(values, dims_to_free: dict[int, str]) -> None:
    for value in values:
        dims = value.type.tensor_type.shape.dim
        for i, name in dims_to_free.items():
            if len(dims) > i:
                dims[i].ClearField("dim_value")
                dims[i].dim_param = name


def fixed_model_path(src: str | os.PathLike, *, batch_dim: bool = True) -> Path:
    """Return the path of an onnxruntime-loadable copy of ``src``, building and caching it when needed."""

    def fix(model) -> None:
        from onnx import numpy_helper

        graph = model.graph
        inits = {init.name: init for init in graph.initializer}
        for node in graph.node:
            if node.op_type != "DequantizeLinear" or "block_size" not in {a.name for a in node.attribute}:
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
        _keep_real_inputs(graph, inits)
        if batch_dim:
            _free_dims(list(graph.input) + list(graph.output), {0: "batch"})

    return _derived(src, "ort-fixed-batch" if batch_dim else "ort-fixed", fix)


def folded_model_path(src: str | os.PathLike, *, free_spatial: bool = False) -> Path:
    """Return a cached copy of ``src`` whose weight dequantisation is folded into float32 initialisers.

    Every node whose inputs are all constants (here ``DequantizeLinear`` on int8 weights and the ``Reshape``
    after it) is evaluated once with ONNX's reference evaluator and replaced by its float32 result: the same
    weights every runtime computes at load time, stored ready to use. OpenVINO needs this (it rejects the
    shipped per-block scales). ``free_spatial`` also frees the input's height and width and the head
    ``Reshape`` targets (``[1, anchors, k]`` becomes ``[1, -1, k]``), so YuNet can run at each image's own size.
    """

    def fold(model) -> None:
        import onnx
        from onnx import helper, numpy_helper
        from onnx.reference import ReferenceEvaluator

        graph = model.graph
        inits = {init.name: init for init in graph.initializer}
        constant = set(inits)
        const_nodes, data_nodes = [], []
        for node in graph.node:
            if node.op_type == "Constant" or (node.input and all(i in constant or not i for i in node.input)):
                const_nodes.append(node)
                constant.update(node.output)
            else:
                data_nodes.append(node)
        used = {i for n in data_nodes for i in n.input} | {o.name for o in graph.output}
        names = sorted((used & constant) - set(inits))
        folded = []
        if names:
            outputs = [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in names]
            sub = helper.make_graph(const_nodes, "constants", [], outputs, list(graph.initializer))
            values = ReferenceEvaluator(helper.make_model(sub, opset_imports=model.opset_import)).run(
                None, {}
            )
            folded = [numpy_helper.from_array(np.asarray(v), n) for n, v in zip(names, values, strict=True)]
        del graph.node[:]
        graph.node.extend(data_nodes)
        del graph.initializer[:]
        graph.initializer.extend([init for name, init in inits.items() if name in used] + folded)
        _keep_real_inputs(graph, {init.name for init in graph.initializer})
        if free_spatial:
            targets = {init.name: init for init in graph.initializer}
            for node in graph.node:
                if node.op_type == "Reshape" and node.input[1] in targets:
                    target = numpy_helper.to_array(targets[node.input[1]]).copy()
                    if target.shape == (3,) and target[0] == 1:
                        target[1] = -1
                        targets[node.input[1]].CopyFrom(numpy_helper.from_array(target, node.input[1]))
            _free_dims(graph.input, {2: "height", 3: "width"})
            _free_dims([v for v in graph.output if len(v.type.tensor_type.shape.dim) == 3], {1: "anchors"})

    return _derived(src, "folded-free" if free_spatial else "folded", fold)
