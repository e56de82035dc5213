"""Specifications of the API's pure rules: what a stage confirms, If-Match matching, storable text."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from jarlpm.api.conditional import check_if_match, etag
from jarlpm.errors import PreconditionFailed
from jarlpm.schemas import storable
from jarlpm.stages import Stage, StageTransitionError, check_content, required_content


@dataclass
class Row:
    version: int


class TestRequiredContent:
    """Each confirmed stage needs its content, and every later stage keeps needing it."""

    def test_cumulative(self) -> None:
        """Needs nothing while capturing the problem, everything once locked."""
        assert required_content(Stage.PROBLEM_CAPTURE) == ()
        assert required_content(Stage.PROBLEM_CONFIRMED) == ("problem_statement",)
        assert required_content(Stage.EPIC_DRAFTED) == ("problem_statement", "desired_outcome")
        assert required_content(Stage.EPIC_LOCKED) == ("problem_statement", "desired_outcome", "description")

    @pytest.mark.parametrize("value", [None, "", "   \n"])
    def test_missing_or_blank(self, value: str | None) -> None:
        """Refuses a missing or blank field, naming it."""
        with pytest.raises(StageTransitionError, match="needs problem_statement"):
            check_content(Stage.PROBLEM_CONFIRMED, {"problem_statement": value})

    def test_present(self) -> None:
        """Accepts the stage once its content is there."""
        check_content(Stage.OUTCOME_CONFIRMED, {"problem_statement": "p", "desired_outcome": "o"})


class TestIfMatch:
    """Strong comparison of the row version, as RFC 9110 asks for If-Match."""

    def test_etag(self) -> None:
        """Quotes the version: a strong entity tag."""
        assert etag(Row(3)) == '"v3"'

    @pytest.mark.parametrize("header", [None, '"v3"', "*", '"v1", "v3"', ' "v3" '])
    def test_matches(self, header: str | None) -> None:
        """Passes without If-Match, with the current tag, *, or a list holding it."""
        check_if_match(header, Row(3), "epic 1")

    @pytest.mark.parametrize("header", ['"v2"', 'W/"v3"', "v3", ""])
    def test_refuses(self, header: str) -> None:
        """Refuses an old tag, a weak one, an unquoted one, carrying the current ETag."""
        with pytest.raises(PreconditionFailed) as caught:
            check_if_match(header, Row(3), "epic 1")
        assert caught.value.etag == '"v3"'


class TestStorable:
    """Text PostgreSQL can store passes unchanged; NUL and lone surrogates do not."""

    @pytest.mark.parametrize("text", ["", "plain", "Ünïcødé 🚀", "日本語", "\ufffd"])
    def test_passes(self, text: str) -> None:
        assert storable(text) == text

    @pytest.mark.parametrize(("text", "why"), [("a\x00b", "NUL"), ("\ud800", "surrogate"), ("x\udfffy", "surrogate")])
    def test_refused(self, text: str, why: str) -> None:
        with pytest.raises(ValueError, match=why):
            storable(text)
