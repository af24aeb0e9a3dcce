"""What the survey pages say: the status pages and the error messages, as msgids of the
pages catalog (translated when rendered, see survey_rendering.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from callerconnect.domain.survey import ErrorCode
from callerconnect.service.survey import LinkStatus


def _(message: str) -> str:
    """Mark a msgid for the pages catalog (translated at render time)."""
    return message


def _n(singular: str, plural: str) -> tuple[str, str]:
    """Mark a msgid with a plural form; rendered with ``n`` = the survey's days."""
    return (singular, plural)


RESUBMIT_NOTICE = _("This page was open for a long time. Check your answers and send them again.")


ERROR_MESSAGES: Mapping[ErrorCode, str] = {
    ErrorCode.NO_ANSWER: _("Answer at least one question or write a comment."),
    ErrorCode.INVALID_CHOICE: _("Choose one of the answers shown."),
    ErrorCode.COMMENT_TOO_LONG: _(
        "Your comment is %(length)s characters long. Shorten it to %(max)s characters or fewer."
    ),
    ErrorCode.CASE_NUMBER_MISSING: _("Enter the case number of your call."),
    ErrorCode.CASE_NUMBER_INVALID: _(
        "Enter the case number as it was given to you, for example 26-00123."
    ),
}


@dataclass
class Page:
    """What a status page says, as msgids (translated when rendered)."""

    title: str
    paragraphs: tuple[str | tuple[str, str], ...]
    status: int
    link: tuple[str, str] | None = None  # (href, msgid)


NOT_FOUND = Page(
    _("Survey link not found"),
    (
        _(
            "This link does not match any survey. Check that you opened the whole link "
            "from the text message."
        ),
        _("If you did not receive a text, you can give feedback with your case number."),
    ),
    404,
    ("/feedback", _("Give feedback with a case number")),
)
ANSWERED = Page(
    _("You have already answered this survey"),
    (
        _("Each survey link can be used once, and we have your answers."),
        _("Thank you for your feedback."),
    ),
    409,
)
CLOSED = Page(
    _("This survey is closed"),
    (
        _n(
            "Survey links can be used for %(days)s day after they are sent, and this one "
            "is no longer open.",
            "Survey links can be used for %(days)s days after they are sent, and this one "
            "is no longer open.",
        ),
        _("Thank you for your interest."),
    ),
    410,
)
LIMITED = Page(
    _("Too many attempts"),
    (
        _("We received too many requests from your connection."),
        _("Please wait a few minutes and try again."),
    ),
    429,
)
FORBIDDEN = Page(
    _("Please try again"),
    (
        _(
            "We could not accept this form because it was not sent from our survey page. "
            "Nothing was recorded."
        ),
        _("Open the page again to answer."),
    ),
    403,
)
TOO_LARGE = Page(
    _("This form is too long"),
    (_("Nothing was recorded. Please shorten your answers and try again."),),
    413,
)
THANKS = Page(
    _("Thank you"),
    (
        _("Your answers have been recorded."),
        _("They help us improve how we answer and respond to calls."),
    ),
    200,
)
LANDLINE_THANKS = Page(
    _("Thank you"),
    (
        _n(
            "If this case number matches a call cleared in the last day that can receive "
            "feedback, your answers have been recorded.",
            "If this case number matches a call cleared in the last %(days)s days that can "
            "receive feedback, your answers have been recorded.",
        ),
        _("Each call can receive one response."),
    ),
    200,
)

STATUS_PAGES: Mapping[LinkStatus, Page] = {
    LinkStatus.UNKNOWN: NOT_FOUND,
    LinkStatus.ANSWERED: ANSWERED,
    LinkStatus.CLOSED: CLOSED,
    LinkStatus.LIMITED: LIMITED,
}
