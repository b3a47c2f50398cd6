"""AppriseSender against real loopback services: json://, form://, ntfy://, mailto://."""

from __future__ import annotations

import base64
import time

import pytest

from peft_notify.channels.chart import loss_png
from peft_notify.channels.events import Outgoing
from peft_notify.channels.sender import AppriseSender, InvalidChannel, parse_retry_after, privacy_url
from peft_notify.wire import NotificationType as K
from tests.channels.conftest import Mailbox, Receiver
from tests.channels.factories import event

PNG = loss_png([(0, 3.0), (10, 2.0), (20, 1.5)])


def outgoing(kind: K = K.ERROR, attachment: bytes | None = None) -> Outgoing:
    ev = event(kind, "oom", title="llama-lora: out of memory")
    return Outgoing(1, "llama-lora: out of memory", "CUDA out of memory\nhost gpu-1", kind, (ev,), attachment)


def test_json_post_carries_title_body_type_and_the_png(receiver: Receiver) -> None:
    sender = AppriseSender(receiver.url("json", "ok"))
    result = sender.send(outgoing(attachment=PNG))
    assert result.ok, result.summary()
    assert result.http_status == 200
    [hit] = receiver.wait_for(1)
    payload = hit.json()
    assert payload["title"] == "llama-lora: out of memory"
    assert payload["message"].startswith("CUDA out of memory")
    assert payload["type"] == "failure"
    [attached] = payload["attachments"]
    assert attached["mimetype"] == "image/png"
    assert base64.b64decode(attached["base64"]) == PNG


def test_form_post_with_the_png_as_a_file(receiver: Receiver) -> None:
    result = AppriseSender(receiver.url("form", "ok")).send(outgoing(K.COMPLETION, PNG))
    assert result.ok, result.summary()
    [hit] = receiver.wait_for(1)
    assert hit.headers["content-type"].startswith("multipart/form-data")
    assert b"llama-lora: out of memory" in hit.body
    assert PNG is not None and PNG in hit.body


def test_ntfy_publish_to_a_self_hosted_server(receiver: Receiver) -> None:
    result = AppriseSender(f"ntfy://127.0.0.1:{receiver.port}/ok").send(outgoing(K.COMPLETION))
    assert result.ok, result.summary()
    [hit] = receiver.wait_for(1)
    assert hit.path == "/"  # ntfy's JSON publish: the topic travels in the body
    assert hit.json() == {
        "topic": "ok",
        "title": "llama-lora: out of memory",
        "message": "CUDA out of memory\nhost gpu-1",
    }


def test_ntfy_attachment_is_the_png_body(receiver: Receiver) -> None:
    result = AppriseSender(f"ntfy://127.0.0.1:{receiver.port}/ok").send(outgoing(K.ERROR, PNG))
    assert result.ok, result.summary()
    [hit] = receiver.wait_for(1)
    assert hit.body == PNG
    assert "filename=loss-curve.png" in hit.path


def test_server_error_is_a_failure_with_its_status(receiver: Receiver) -> None:
    result = AppriseSender(receiver.url("json", "fail")).send(outgoing())
    assert not result.ok
    assert result.http_status == 500
    assert not result.permanent
    assert "HTTP 500" in result.summary()


def test_429_reports_retry_after(receiver: Receiver) -> None:
    receiver.retry_after = "7"
    result = AppriseSender(receiver.url("json", "limit")).send(outgoing())
    assert not result.ok
    assert (result.http_status, result.retry_after_s) == (429, 7.0)


def test_a_hanging_service_returns_within_the_timeout(receiver: Receiver) -> None:
    sender = AppriseSender(receiver.url("json", "hang"), timeout_s=1.0)
    started = time.monotonic()
    result = sender.send(outgoing())
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.status == "timeout"
    assert elapsed < 3.0  # the timeout plus apprise's small grace, not the server's 30 s


def test_mailto_through_a_real_smtp_server(smtp_server: Mailbox) -> None:
    url = f"mailto://user:s3cret@127.0.0.1:{smtp_server.port}?to=me@example.com&from=job@example.com&mode=insecure"
    sender = AppriseSender(url)
    assert "s3cret" not in sender.display
    result = sender.send(outgoing(K.ERROR, PNG))
    assert result.ok, result.summary()
    [mail] = smtp_server.wait_for(1)
    assert smtp_server.logins == ["user"]
    assert "out of memory" in str(mail["Subject"])
    parts = [p.get_content_type() for p in mail.walk()]
    assert "image/png" in parts


def test_urls_are_shown_only_in_privacy_form(receiver: Receiver) -> None:
    url = f"json://alice:hunter2@127.0.0.1:{receiver.port}/ok"
    sender = AppriseSender(url)
    assert "hunter2" not in sender.display
    assert "hunter2" not in privacy_url(url)
    bot = "tgram://123456789:AAHsecretTOKENsecretTOKENsecretTOK/987654"
    assert "secretTOKEN" not in privacy_url(bot)
    # apprise's own privacy form leaves these readable; they are secrets too.
    assert privacy_url("ntfys://ntfy.sh/my-secret-topic") == "ntfys://ntfy.sh/m…c"
    assert "TOKEN" not in privacy_url("jsons://hooks.example.com/peft/abcTOKENxyz123")
    assert "me%40example" not in privacy_url("mailtos://me:pw@gmail.com?to=me@example.com")


def test_an_unusable_url_is_one_clear_error_without_the_url() -> None:
    with pytest.raises(InvalidChannel) as info:
        AppriseSender("nosuchscheme://token-abc123@host")
    assert "token-abc123" not in str(info.value)
    assert "nosuchscheme" in str(info.value)
    assert "token-abc123" not in privacy_url("nosuchscheme://token-abc123@host")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12.0), (" 3 ", 3.0), ("soon", None), (None, None), ("99999999", 86_400.0), ("-5", None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0


def test_a_failure_answer_never_carries_the_hidden_parts_of_the_url(receiver: Receiver) -> None:
    # apprise's ntfy plugin names the topic in its failure line ("Failed to send ntfy notification to
    # topic '...'"); the topic is the secret of an ntfy channel, so the answer must not carry it.
    import logging

    class Keep(logging.Handler):  # what the process's own logging (a root handler) would get
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        sender = AppriseSender(f"ntfy://bob:pa55word@127.0.0.1:{receiver.port}/fail-secret-topic-42", timeout_s=2)
        result = sender.send(outgoing(K.ERROR))
    finally:
        logging.getLogger().removeHandler(keep)
    assert not result.ok
    assert result.http_status == 500
    text = f"{sender.display} {result.summary()}"
    assert "secret-topic-42" not in text
    assert "pa55word" not in text
    assert not any("secret-topic-42" in line for line in keep.lines)  # apprise's records stay inside apprise


def test_text_from_the_job_cannot_ping_a_chat_or_inject_markup(receiver: Receiver) -> None:
    # ntfy with format=markdown is a Markdown destination reachable on loopback; Discord and Slack
    # go through the same two steps (escaping by apprise, mentions made inert by us).
    ev = event(K.ERROR, "x", title="@everyone <!channel> <@123>")
    out = Outgoing(1, ev.title, "**bold** [click](http://evil.example) @here", K.ERROR, (ev,))
    result = AppriseSender(f"ntfy://127.0.0.1:{receiver.port}/ok?format=markdown").send(out)
    assert result.ok, result.summary()
    [hit] = receiver.wait_for(1)
    payload = hit.json()
    text = payload["title"] + " " + payload["message"]
    for ping in ("@everyone", "<!channel>", "<@123>", "@here"):
        assert ping not in text
    # The body is plain text to apprise: escaped for the Markdown destination (titles are plain fields).
    assert "[click](http" not in payload["message"]
    assert "**bold**" not in payload["message"]


def test_defang() -> None:
    from peft_notify.channels.message import defang

    assert defang("mail me@example.com") == "mail me@example.com"
    assert defang("@Everyone hi") == "@\u200bEveryone hi"
    assert defang("<!here> <#C1> <@U2>") == "<\u200b!here> <\u200b#C1> <\u200b@U2>"


def test_secrets_in_a_jobs_text_are_redacted_before_they_leave(receiver: Receiver) -> None:
    ev = event(K.ERROR, "x", title="crash")
    body = "HTTPError 401 for --hf-token hf_abcdefghijklmnopqrstuvwxyz0123 at step 3"
    assert AppriseSender(receiver.url("json")).send(Outgoing(1, "crash", body, K.ERROR, (ev,))).ok
    [hit] = receiver.wait_for(1)
    assert "hf_abcdefghijklmnopqrstuvwxyz0123" not in hit.body.decode()
    assert "[redacted]" in hit.json()["message"]
