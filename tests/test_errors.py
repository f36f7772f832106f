"""The one error users see (`rvmkit.errors`): one line naming the file and what is wrong with it."""

from __future__ import annotations

import pytest

from conftest import CLIPS
from rvmkit.errors import RvmkitError, describe_path, first_line, require_readable_file


def test_a_readable_file_is_returned_as_a_string():
    assert require_readable_file(CLIPS["milk"], "video") == str(CLIPS["milk"])


@pytest.mark.parametrize("case, message", [("missing", "no such video"),
                                           ("folder", "is a directory, expected a video"),
                                           ("empty", "video is empty")])
def test_an_unusable_file_is_one_line_naming_it(tmp_path, case, message):
    path = tmp_path / case
    if case == "folder":
        path.mkdir()
    elif case == "empty":
        path.touch()
    with pytest.raises(RvmkitError) as info:
        require_readable_file(path, "video")
    assert str(info.value) == f"{describe_path(path)}: {message}"
    assert info.value.exit_code == 2


def test_first_line_keeps_the_first_non_blank_line_of_a_long_message():
    assert first_line(ValueError("\n  \n  bad shape  \nTraceback (detail)\n")) == "bad shape"
    assert first_line(KeyError()) == "KeyError"
    assert first_line("", default="no reason given") == "no reason given"
    assert first_line("") == "failed"
