"""The value codec: data survives the trip, and nothing in it can run code."""

from __future__ import annotations

import base64
import io
import json
import math
import pickle

import numpy as np
import pytest
import torch

from autograder import wire

LIMIT = 1 << 20


def roundtrip(value: object) -> object:
    return wire.unpack(wire.pack(value, max_bytes=LIMIT), max_bytes=LIMIT)


def test_plain_values_and_containers() -> None:
    value = {"a": [1, 2.5, "x", None, True], (1, 2): ("t", 3)}
    assert roundtrip(value) == value


def test_special_floats() -> None:
    back = roundtrip([math.nan, math.inf, -math.inf])
    assert isinstance(back, list)
    assert math.isnan(back[0]) and back[1] == math.inf and back[2] == -math.inf


def test_tensor_keeps_dtype_shape_and_grad_flag() -> None:
    tensor = torch.arange(6, dtype=torch.int16).reshape(2, 3)
    back = roundtrip(tensor)
    assert isinstance(back, torch.Tensor)
    assert back.dtype == torch.int16 and back.shape == (2, 3) and torch.equal(back, tensor)
    grad = roundtrip(torch.ones(2, requires_grad=True))
    assert isinstance(grad, torch.Tensor) and grad.requires_grad


def test_a_view_sends_only_its_own_elements() -> None:
    big = torch.zeros(1_000_000)
    text = wire.pack(big[:3], max_bytes=LIMIT)
    assert len(text) < 10_000


def test_numpy_arrays_and_scalars() -> None:
    array = np.arange(4, dtype=np.float32)
    back = roundtrip([array, np.int64(7)])
    assert isinstance(back, list)
    assert isinstance(back[0], np.ndarray) and back[0].dtype == np.float32
    assert back[1] == 7 and isinstance(back[1], np.int64)


def test_torch_descriptors() -> None:
    assert roundtrip([torch.float64, torch.device("cpu"), torch.Size([2, 3])]) == [
        torch.float64,
        torch.device("cpu"),
        torch.Size([2, 3]),
    ]


def test_module_becomes_a_description() -> None:
    back = roundtrip(torch.nn.Linear(2, 3))
    assert isinstance(back, dict)
    assert back["type"] == "torch.nn.modules.linear.Linear"
    assert back["state"]["weight"].shape == (3, 2)


def test_unknown_objects_are_described_not_rebuilt() -> None:
    class Sneaky:
        def __eq__(self, other: object) -> bool:
            return True

    back = roundtrip(Sneaky())
    assert isinstance(back, dict) and back["t"] == "object"
    assert back != 42 or back == {"t": "object"}  # a plain dict: equality is honest


def test_tensor_subclass_comes_back_as_a_plain_tensor() -> None:
    class Liar(torch.Tensor):
        def __eq__(self, other: object) -> bool:  # type: ignore[override]
            return True

    back = roundtrip(torch.ones(2).as_subclass(Liar))
    assert type(back) is torch.Tensor


def test_size_bound_is_enforced() -> None:
    with pytest.raises(wire.ValueTooLarge):
        wire.pack(torch.zeros(1000), max_bytes=100)
    with pytest.raises(wire.ValueTooLarge):
        wire.unpack("x" * 10_000_000, max_bytes=100)


def test_deep_nesting_is_refused() -> None:
    value: list[object] = []
    for _ in range(100):
        value = [value]
    with pytest.raises(wire.ValueTooLarge):
        wire.pack(value, max_bytes=LIMIT)


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle ran code",))


def test_a_pickle_in_the_tensor_blob_is_refused() -> None:
    payload = io.BytesIO()
    torch.save([torch.ones(1), _Boom()], payload)
    node = {"t": "tensor", "index": 0, "shape": [1], "dtype": "float32"}
    text = json.dumps({"tree": node, "blob": base64.b64encode(payload.getvalue()).decode()})
    with pytest.raises(pickle.UnpicklingError):
        wire.unpack(text, max_bytes=LIMIT)


def test_unknown_tags_are_refused() -> None:
    with pytest.raises(ValueError):
        wire.unpack(json.dumps({"tree": {"t": "exec", "code": "1"}, "blob": ""}), max_bytes=LIMIT)


# ---- decoding is bounded before it allocates: hand-built payloads, as a hostile kernel would send them


def hand_built(tree: object, tensors: list[torch.Tensor] | None = None, **save: object) -> str:
    blob = b""
    if tensors is not None:
        buffer = io.BytesIO()
        torch.save(tensors, buffer, **save)  # type: ignore[arg-type]
        blob = buffer.getvalue()
    return json.dumps({"tree": tree, "blob": base64.b64encode(blob).decode()})


def tensor_node(index: int, shape: list[int], dtype: str = "float32", tag: str = "tensor") -> dict[str, object]:
    return {"t": tag, "index": index, "shape": shape, "dtype": dtype, "device": "cpu"}


def test_a_stride_zero_expand_is_refused_not_materialised() -> None:
    small = torch.zeros(256).expand(4096, 256)  # 1 KiB of storage that would copy into 4 MiB
    for tag in ("tensor", "ndarray"):
        text = hand_built(tensor_node(0, [4096, 256], tag=tag), [small])
        with pytest.raises(ValueError, match="view"):
            wire.unpack(text, max_bytes=8 * LIMIT)


def test_a_huge_expand_is_refused_by_its_declared_size() -> None:
    text = hand_built(tensor_node(0, [10**9, 256]), [torch.zeros(256).expand(10**9, 256)])
    with pytest.raises(wire.ValueTooLarge):
        wire.unpack(text, max_bytes=LIMIT)


def test_declared_small_delivered_big_is_refused() -> None:
    text = hand_built(tensor_node(0, [2]), [torch.zeros(1_000_000)])  # 4 MB behind a 2-element declaration
    with pytest.raises(wire.ValueTooLarge):
        wire.unpack(text, max_bytes=LIMIT)
    text = hand_built(tensor_node(0, [2]), [torch.zeros(3)])
    with pytest.raises(ValueError, match="shape"):
        wire.unpack(text, max_bytes=LIMIT)


def test_a_huge_declared_shape_is_refused_before_loading() -> None:
    text = hand_built(tensor_node(0, [10**12]))  # no blob at all: refused on the declaration alone
    with pytest.raises(wire.ValueTooLarge):
        wire.unpack(text, max_bytes=LIMIT)


@pytest.mark.parametrize(
    "tensors",
    [
        [torch.zeros(8)[:4]],  # a view into a larger storage
        [torch.zeros(8)[4:]],  # an offset into one
        [torch.zeros(4, 4).t()],  # transposed strides
        [torch.zeros(4).to_sparse()],
    ],
    ids=["prefix-view", "offset-view", "transposed", "sparse"],
)
@pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns about sparse tensors as it loads them
def test_views_and_other_layouts_are_refused(tensors: list[torch.Tensor]) -> None:
    text = hand_built(tensor_node(0, list(tensors[0].shape)), tensors)
    with pytest.raises(ValueError):
        wire.unpack(text, max_bytes=LIMIT)


def test_tensors_sharing_one_storage_are_refused() -> None:
    shared = torch.zeros(4)
    text = hand_built([tensor_node(0, [4]), tensor_node(1, [4])], [shared, shared])
    with pytest.raises(ValueError):
        wire.unpack(text, max_bytes=LIMIT)


def test_a_tensor_named_twice_is_refused() -> None:
    node = tensor_node(0, [4], tag="ndarray")  # each copy would be a new array
    with pytest.raises(ValueError, match="twice"):
        wire.unpack(hand_built([node, node], [torch.zeros(4), torch.zeros(4)]), max_bytes=LIMIT)


def test_a_compressed_archive_is_refused() -> None:
    import zipfile

    buffer = io.BytesIO()
    torch.save([torch.zeros(100_000)], buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    deflated = io.BytesIO()
    with zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for record in source.infolist():
            target.writestr(record.filename, source.read(record.filename))
    text = json.dumps({"tree": tensor_node(0, [100_000]), "blob": base64.b64encode(deflated.getvalue()).decode()})
    with pytest.raises(ValueError, match="compressed"):
        wire.unpack(text, max_bytes=LIMIT)


def test_the_legacy_format_is_refused() -> None:
    text = hand_built(tensor_node(0, [4]), [torch.zeros(4)], _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="archive"):
        wire.unpack(text, max_bytes=LIMIT)


def test_deep_or_container_heavy_json_is_refused_before_parsing() -> None:
    deep = json.dumps({"tree": None, "blob": ""})[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(wire.ValueTooLarge):
        wire.unpack(deep, max_bytes=LIMIT)
    many = '{"blob": "", "tree": [' + "[]," * (wire.MAX_CONTAINERS + 1) + "[]]}"  # ~20x its size once parsed
    with pytest.raises(wire.ValueTooLarge):
        wire.unpack(many, max_bytes=4 * LIMIT)


def test_a_deep_tree_is_refused() -> None:
    tree: object = 1
    for _ in range(wire.MAX_DEPTH + 5):
        tree = [tree]
    with pytest.raises(wire.ValueTooLarge):
        wire.unpack(json.dumps({"tree": tree, "blob": ""}), max_bytes=LIMIT)


def test_numpy_scalars_are_numbers_only() -> None:
    void = {"t": "npscalar", "dtype": "V1000000", "value": 10**9}  # numpy.void(10**9) is a gigabyte
    with pytest.raises(ValueError):
        wire.unpack(json.dumps({"tree": void, "blob": ""}), max_bytes=LIMIT)


def test_packing_an_expand_is_bounded_before_copying() -> None:
    with pytest.raises(wire.ValueTooLarge):  # copying it first would need 4 TiB
        wire.pack(torch.zeros(1).expand(2**40), max_bytes=LIMIT)
    with pytest.raises(wire.ValueTooLarge):
        wire.pack(np.broadcast_to(np.zeros(1), (2**40,)), max_bytes=LIMIT)


def test_honest_values_still_round_trip_with_declarations() -> None:
    value = {"w": torch.randn(3, 4).t(), "a": np.arange(6).reshape(2, 3)[:, ::2], "m": torch.nn.Linear(2, 2)}
    back = roundtrip(value)
    assert isinstance(back, dict)
    assert torch.equal(back["w"], value["w"]) and back["w"].is_contiguous()
    assert np.array_equal(back["a"], value["a"])
