from __future__ import annotations

from tidings.kit.jsondoc import diff, leaves, merge_patch


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "list": [3], "new": {"x": 1}}
    assert merge_patch(target, patch) == {
        "a": "z",
        "c": {"d": "e"},
        "list": [3],
        "new": {"x": 1},
    }
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}


def test_merge_patch_replaces_a_scalar_with_an_object() -> None:
    assert merge_patch({"a": 1}, {"a": {"b": None, "c": 2}}) == {"a": {"c": 2}}


def test_diff_reports_nested_changes_with_json_pointers() -> None:
    before = {"a/b": 1, "n": {"x": 1, "y": 2}, "gone": True, "same": [1]}
    after = {"a/b": 2, "n": {"x": 1, "z": 3}, "same": [1], "t": 1}
    assert diff(before, after) == [
        {"op": "replace", "path": "/a~1b", "from": 1, "to": 2},
        {"op": "remove", "path": "/gone", "from": True, "to": None},
        {"op": "remove", "path": "/n/y", "from": 2, "to": None},
        {"op": "add", "path": "/n/z", "from": None, "to": 3},
        {"op": "add", "path": "/t", "from": None, "to": 1},
    ]


def test_diff_sees_type_changes() -> None:
    assert diff({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "from": 1, "to": True}]


def test_leaves_walks_in_document_order_with_paths() -> None:
    document = {"a": [1, {"b": "x"}], "ref": {"$ref": "data.y"}, "empty": {}}
    assert list(leaves(document, "doc")) == [
        ("doc.a[0]", 1),
        ("doc.a[1].b", "x"),
        ("doc.ref.$ref", "data.y"),
    ]
    whole = list(leaves(document, whole=lambda value: "$ref" in value))
    assert whole[-1] == (".ref", {"$ref": "data.y"})
    assert list(leaves("text")) == [("", "text")]
