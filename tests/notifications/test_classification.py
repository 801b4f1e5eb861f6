import smtplib

import pytest
from django.template import TemplateDoesNotExist

from notifications.attempts import Verdict, classify_email_error, classify_status


@pytest.mark.parametrize(
    ("status_code", "verdict"),
    [
        (200, Verdict.SUCCEEDED),
        (201, Verdict.SUCCEEDED),
        (204, Verdict.SUCCEEDED),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (504, Verdict.RETRY),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (301, Verdict.PERMANENT),
        (302, Verdict.PERMANENT),
        (307, Verdict.PERMANENT),
        (400, Verdict.PERMANENT),
        (401, Verdict.PERMANENT),
        (403, Verdict.PERMANENT),
        (404, Verdict.PERMANENT),
        (410, Verdict.PERMANENT),
        (422, Verdict.PERMANENT),
        (101, Verdict.PERMANENT),
    ],
)
def test_http_status_codes_are_classified(status_code, verdict):
    assert classify_status(status_code) is verdict


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")}), Verdict.PERMANENT),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (450, b"mailbox busy")}), Verdict.RETRY),
        (smtplib.SMTPSenderRefused(553, b"sender refused", "orders@localhost"), Verdict.PERMANENT),
        (smtplib.SMTPDataError(451, b"try again later"), Verdict.RETRY),
        (smtplib.SMTPServerDisconnected("gone"), Verdict.RETRY),
        (ConnectionRefusedError(111, "Connection refused"), Verdict.RETRY),
        (TimeoutError("timed out"), Verdict.RETRY),
        (TemplateDoesNotExist("notifications/email/x.txt"), Verdict.PERMANENT),
        (ValueError("bad address"), Verdict.PERMANENT),
    ],
)
def test_email_errors_are_classified(error, verdict):
    assert classify_email_error(error) is verdict
