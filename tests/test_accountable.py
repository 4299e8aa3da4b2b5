"""The accountability values own their rules: one input gives one value, or one refusal naming the field."""

from __future__ import annotations

import unicodedata

import pytest

from faceaudit.accountable import AccountableText, Principal, SubjectRef, TextRefused, same_principal
from faceaudit.errors import UsageError

NAME = "Zoë Ångström"


@pytest.mark.parametrize("form", ["NFC", "NFD", "NFKC", "NFKD"])
def test_every_normal_form_and_padding_gives_one_ref(form):
    ref = SubjectRef(f"  {unicodedata.normalize(form, NAME)}\t")
    assert ref == unicodedata.normalize("NFC", NAME) and type(ref) is SubjectRef


def test_a_principal_is_its_canonical_form():
    assert Principal("Reviewer-A") == Principal(" reviewer-a ") == "reviewer-a"
    assert Principal("ＲＥＶＩＥＷＥＲ-Ａ") == "reviewer-a"  # full-width letters: NFKC
    assert Principal("STRASSE") == Principal("straße")  # case folding, not lower()
    assert same_principal("Searcher-1", "searcher-1") and not same_principal("searcher-1", "searcher-2")
    assert Principal(Principal("X")) == "x"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("case\u202e1-C", "format"),  # right-to-left override: would display reversed
        ("ca\u200bse", "format"),  # zero-width space
        ("ca\u2066se\u2069", "format"),  # bidi isolate
        ("case\ufeff", "format"),  # zero-width no-break space (BOM)
        ("\x1b[31mcase", "control"),
        ("case\x00", "control"),
        ("line\nbreak", "control"),
        ("private\ue000", "private-use"),
        ("   ", "blank"),
        ("\u200b", "format"),
        ("", "blank"),
    ],
)
@pytest.mark.parametrize("kind", [AccountableText, SubjectRef, Principal])
def test_refusals_name_the_field(kind, text, why):
    with pytest.raises(TextRefused) as err:
        kind(text, "purpose")
    assert err.value.field == "purpose" and str(err.value).startswith("purpose")
    assert why in str(err.value) or why in ("blank",)
    assert isinstance(err.value, UsageError)  # exit 2 on the CLI


def test_length_limits():
    assert len(AccountableText("x" * 2000, "reason")) == 2000
    with pytest.raises(TextRefused, match="at most 2000"):
        AccountableText("x" * 2001, "reason")
    with pytest.raises(TextRefused, match="at most 256"):
        SubjectRef("r" * 257)
    with pytest.raises(UsageError, match="at most 128"):
        Principal("p" * 129)


def test_text_that_is_only_combining_marks_is_blank_but_scripts_pass():
    with pytest.raises(TextRefused):
        AccountableText("\u0301\u0301", "case")
    assert AccountableText("دعوى ١٢", "case") == "دعوى ١٢"  # right-to-left script without overrides is fine
    assert AccountableText("事件 7", "case") == "事件 7"


def test_the_review_state_machine():
    """The documented rule, as a table: reviews in order → status; and what is refused."""
    from faceaudit.operations.review import Decision, Review, ReviewRefused, SearchStatus, check, decide

    C, R = Decision.CONFIRM, Decision.REJECT
    table = [
        ([("a", C, "x")], SearchStatus.PENDING_REVIEW),
        ([("a", C, "x"), ("b", C, "x")], SearchStatus.CONFIRMED),
        ([("a", R, None), ("b", R, None)], SearchStatus.REJECTED),
        ([("a", C, "x"), ("b", R, None)], SearchStatus.DISPUTED),
        ([("a", C, "x"), ("b", C, "y")], SearchStatus.DISPUTED),
        ([("a", C, "x"), ("b", R, None), ("c", C, "x")], SearchStatus.CONFIRMED),
        ([("a", C, "x"), ("b", R, None), ("c", R, None)], SearchStatus.REJECTED),
        ([("a", C, "x"), ("b", C, "y"), ("c", R, None)], SearchStatus.REJECTED),
    ]
    for reviews, status in table:
        assert decide([Review(*r) for r in reviews]) is status, reviews
    live = {"x", "y", "z"}
    disputed = [Review("a", C, "x"), Review("b", C, "y")]
    with pytest.raises(ReviewRefused, match="disputed"):  # a resolver must side with an earlier confirm
        check("s", "searcher", SearchStatus.DISPUTED, disputed, Review("c", C, "z"), live)
    with pytest.raises(ReviewRefused) as err:
        check("s", "Searcher", SearchStatus.PENDING_REVIEW, [], Review("searcher", C, "x"), live)
    assert err.value.code == "self_review" and err.value.status == 403
    with pytest.raises(ReviewRefused) as err:
        check("s", "s1", SearchStatus.CONFIRMED, disputed, Review("d", R), live)
    assert err.value.code == "already_decided" and err.value.status == 409
    with pytest.raises(ReviewRefused) as err:
        check("s", "s1", SearchStatus.PENDING_REVIEW, [Review("a", C, "x")], Review("A", R), live)
    assert err.value.code == "already_reviewed"
    assert check("s", "s1", SearchStatus.PENDING_REVIEW, [], Review("a", R, "gone"), live).subject_ref is None
