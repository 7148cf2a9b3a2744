"""Per-token activation quantisation: make dynamic int8 output independent of batch composition.

``quantize_dynamic`` inserts ``DynamicQuantizeLinear(x)`` before each int8 MatMul: one scale and
zero point for the **whole** activation tensor ``(N, L, H)``. A row's result then depends on every
other row in the batch (and its padding): batched-vs-single cosine ≈ 0.985 on MiniLM, and one
outlier token costs every other token its resolution.

:func:`per_token_activations` rewrites each such node into a symmetric per-token quantiser::

    s  = max(|x|, over H) / 127                      (N, L, 1) per-token scale
    xq = QuantizeLinear(x / s, scale=1, zero=128)    uint8, a constant scalar scale and zero point
    y  = MatMulIntegerToFloat(xq, Wq, 1, w_scale, 128, w_zero) · s      row scale applied after

``MatMulInteger → Cast → Mul`` is written directly as the fused ``com.microsoft`` kernel
``MatMulIntegerToFloat`` with a scalar activation scale of 1 (that kernel's ``a_scale`` must be a
scalar: onnxruntime's own fusion, fed an ``(N, L, 1)`` scale, silently gives wrong results).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

_CONSTS = {
    "pt_eps": np.array(1e-8, dtype=np.float32),
    "pt_127": np.array(127.0, dtype=np.float32),
    "pt_one": np.array(1.0, dtype=np.float32),
    "pt_zp": np.array(128, dtype=np.uint8),
    "pt_axes": np.array([-1], dtype=np.int64),
}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def per_token_activations(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Rewrite every default-domain ``DynamicQuantizeLinear`` feeding ``MatMulInteger → Cast → Mul``.

    Returns the model (changed in place) and the number of quantisers rewritten. Raises
    ``ValueError`` if a quantised activation feeds anything but that chain (then the row scale
    could not be re-applied).
    """
    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    cons = _consumers(g)
    before: dict[str, list[onnx.NodeProto]] = {}  # DQL node name -> nodes replacing it
    replace: dict[str, list[onnx.NodeProto]] = {}  # MatMulInteger name -> MatMulIntegerToFloat + row scale
    drop: set[str] = set()  # Cast / Mul nodes folded into MatMulIntegerToFloat
    for node in g.node:
        if node.op_type != "DynamicQuantizeLinear" or node.domain not in ("", "ai.onnx"):
            continue
        x = node.input[0]
        xq, a_scale, _ = node.output
        p = f"{node.name or xq}_pt"
        s = f"{p}_rowscale"
        if opset >= 18:
            red = helper.make_node("ReduceMax", [f"{p}_abs", "pt_axes"], [f"{p}_amax"], keepdims=1, name=f"{p}_max")
        else:
            red = helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_amax"], axes=[-1], keepdims=1, name=f"{p}_max")
        before[node.name] = [
            helper.make_node("Abs", [x], [f"{p}_abs"], name=f"{p}_absn"),
            red,
            helper.make_node("Max", [f"{p}_amax", "pt_eps"], [f"{p}_amax_eps"], name=f"{p}_clamp"),
            helper.make_node("Div", [f"{p}_amax_eps", "pt_127"], [s], name=f"{p}_scale"),
            helper.make_node("Div", [x, s], [f"{p}_xn"], name=f"{p}_div"),
            helper.make_node("QuantizeLinear", [f"{p}_xn", "pt_one", "pt_zp"], [xq], name=f"{p}_q"),
        ]
        for mm in cons.get(xq, []):
            chain = cons.get(mm.output[0], [])
            cast = chain[0] if len(chain) == 1 and chain[0].op_type == "Cast" else None
            muls = cons.get(cast.output[0], []) if cast is not None else []
            if mm.op_type != "MatMulInteger" or len(muls) != 1 or muls[0].op_type != "Mul":
                raise ValueError(f"per-token rewrite: {xq} feeds {mm.op_type} {mm.name!r}, expected MatMulInteger→Cast→Mul")
            out_mul = muls[0]
            scale_prod = next(
                (n for n in cons.get(a_scale, []) if n.op_type == "Mul" and set(n.output) & set(out_mul.input)), None
            )
            if scale_prod is None:
                raise ValueError(f"per-token rewrite: no a_scale · b_scale product feeds {out_mul.name!r}")
            b_scale = next(i for i in scale_prod.input if i != a_scale)
            y = out_mul.output[0]
            b_zp = [mm.input[3]] if len(mm.input) > 3 and mm.input[3] else []
            fused = helper.make_node(
                "MatMulIntegerToFloat", [mm.input[0], mm.input[1], "pt_one", b_scale, "pt_zp", *b_zp],
                [f"{y}_unscaled"], domain="com.microsoft", name=f"{mm.name}_pt",
            )
            row = helper.make_node("Mul", [f"{y}_unscaled", s], [y], name=f"{mm.name}_rowscale")
            replace[mm.name] = [fused, row]
            drop.update({cast.name, out_mul.name, scale_prod.name})
    if not before:
        return model, 0
    new_nodes: list[onnx.NodeProto] = []
    for node in g.node:
        if node.op_type == "DynamicQuantizeLinear" and node.name in before:
            new_nodes += before[node.name]
        elif node.op_type == "MatMulInteger" and node.name in replace:
            new_nodes += replace[node.name]
        elif node.name not in drop:
            new_nodes.append(node)
    del g.node[:]
    g.node.extend(new_nodes)
    have = {t.name for t in g.initializer}
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in _CONSTS.items() if k not in have)
    if opset < 18:
        g.initializer.remove(next(t for t in g.initializer if t.name == "pt_axes"))
    del g.value_info[:]  # scales changed shape; let onnxruntime re-infer
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model, len(before)


def rewrite_file(src: str | Path, dst: str | Path) -> int:
    """Load ``src``, apply :func:`per_token_activations`, check and save to ``dst``; returns quantisers rewritten."""
    model, n = per_token_activations(onnx.load(str(src)))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return n
