"""Generated blocks of markdown documents: the prose around them survives every rewrite."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mnemax.experiment.markdown import replace_section

prose = st.text(alphabet=st.characters(blacklist_characters="<>", blacklist_categories=("Cs", "Cc")), max_size=60)


@settings(max_examples=30, deadline=None)
@given(before=prose, after=prose, old=prose, new=prose, other=prose)
def test_replace_section_keeps_the_text_around_the_block(tmp_path_factory, before, after, old, new, other):
    path = tmp_path_factory.mktemp("md") / "DOC.md"
    path.write_text(f"{before}\n<!-- a -->\n{old}\n<!-- /a -->\n<!-- b -->\n{other}\n<!-- /b -->\n{after}")
    replace_section(path, "a", f"x{new}")
    text = path.read_text()
    assert text.startswith(before) and text.endswith(after)
    assert f"<!-- a -->\n{('x' + new).strip()}\n<!-- /a -->" in text
    assert f"<!-- b -->\n{other}\n<!-- /b -->" in text
    assert text.count("<!-- a -->") == 1


def test_replace_section_appends_a_missing_block_and_creates_a_missing_file(tmp_path):
    path = tmp_path / "sub" / "NEW.md"
    replace_section(path, "results", "table", "# Title\n")
    assert path.read_text() == "# Title\n\n<!-- results -->\ntable\n<!-- /results -->\n"
    replace_section(path, "more", "figure")
    assert path.read_text().endswith("<!-- /results -->\n\n<!-- more -->\nfigure\n<!-- /more -->\n")
    replace_section(path, "results", "new table")
    assert "old" not in path.read_text() and path.read_text().count("table") == 1
