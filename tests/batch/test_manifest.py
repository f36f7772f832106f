"""A batch's `manifest.json` (`rvmkit.batch.manifest`): saved whole after each item, read back as it was
written, and the resume rule: an item is finished only while every output it lists exists. The schema
as a Ray run writes it is tested in test_ray_runner.py."""

from __future__ import annotations

import json

import pytest

from conftest import CLIPS
from rvmkit.batch.manifest import MANIFEST_NAME, Item, Manifest
from rvmkit.errors import RvmkitError


def test_records_are_saved_replaced_in_place_and_read_back(tmp_path):
    path = tmp_path / MANIFEST_NAME
    output = tmp_path / "book.composition.mp4"
    output.write_bytes(b"a finished output")
    manifest = Manifest.load(path)
    assert manifest.items == [] and not path.exists()
    manifest.record(Item(str(CLIPS["book"]), "failed", error="decode error"))
    manifest.record(Item(str(CLIPS["milk"]), "skipped", {"composition": str(tmp_path / "absent.mp4")}))
    manifest.record(Item(str(CLIPS["book"]), "done", {"composition": str(output)}, frames=109, seconds=1.5,
                         fingerprint="abc"))
    assert [item["status"] for item in json.loads(path.read_text())["items"]] == ["done", "skipped"]
    again = Manifest.load(path)
    assert again.items == manifest.items
    assert again.get(str(CLIPS["book"])).finished()
    assert not again.get(str(CLIPS["milk"])).finished()  # its output is gone: do it again
    output.unlink()
    assert not again.get(str(CLIPS["book"])).finished()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]  # no temporary left behind


def test_an_unknown_status_is_refused_and_nothing_is_saved(tmp_path):
    manifest = Manifest(tmp_path / MANIFEST_NAME)
    with pytest.raises(ValueError, match="status must be one of"):
        manifest.record(Item(str(CLIPS["book"]), "running"))
    assert manifest.items == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["not json", '{"jobs": []}', '{"items": [3]}'])
def test_a_file_that_is_not_a_manifest_is_one_line_naming_it(tmp_path, text):
    path = tmp_path / MANIFEST_NAME
    path.write_text(text)
    with pytest.raises(RvmkitError) as info:
        Manifest.load(path)
    message = str(info.value)
    assert message.startswith(f"'{path}': not an rvmkit batch manifest") and "\n" not in message
    assert path.read_text() == text
