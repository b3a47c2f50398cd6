"""Replace secrets in free text with ``[redacted]``.

Call :func:`redact` on any text that came from a job (a command line, a stderr tail, an
exception message, a job name) before it reaches a notification, a history entry or a log
line.  The training side applies it before anything leaves the process; the desktop side
applies it again before writing history or logs, so a job server that does not redact
(an older version, a hostile one) still does not get secrets written to disk.

Stdlib only, pure, and idempotent: ``redact(redact(s)) == redact(s)``.  The patterns aim at
what really leaks from training jobs (Hugging Face / OpenAI / GitHub / Slack / AWS tokens,
``--token X`` on a command line, ``HF_TOKEN=...`` in an environment dump, ``user:pass@`` in a
git or pip URL, ``Authorization:`` headers in an HTTP error) without touching ordinary
training output such as ``loss=0.5 lr=2e-4 step 100/1000`` or ``--max-new-tokens 512``.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "SafeLogFilter", "install_log_filter", "redact"]

REDACTED = "[redacted]"

# A value on a command line or in an assignment: a quoted string or a run of non-space
# characters.  `&` and `#` end a value so that `?token=abc&page=2` keeps `&page=2`.
# An already redacted value is taken as it is (so a second pass does not eat what follows it).
_VALUE = r"""(?:\[redacted\]|"[^"\n]*"|'[^'\n]*'|[^\s&#"',;]+)"""

# Well-known token formats, redacted wherever they appear.  The lookbehind keeps a longer
# identifier (`my_hf_...`, `task-sk-...`) from being cut in the middle.
_TOKEN_FORMATS = (
    r"hf_[A-Za-z0-9]{16,}"  # Hugging Face user/org tokens
    r"|api_org_[A-Za-z0-9]{16,}"  # Hugging Face (legacy) org API tokens
    r"|sk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_]{16,}"  # OpenAI / Anthropic style (sk-proj-…, sk-ant-…)
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub classic tokens
    r"|github_pat_[A-Za-z0-9_]{20,}"  # GitHub fine-grained tokens
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}"  # AWS access key ids
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWTs
)
_TOKENS = re.compile(r"(?<![A-Za-z0-9_-])(?:" + _TOKEN_FORMATS + ")")
# A token right after a colour code (`\x1b[1mhf_…` in a coloured log line): the code's final
# `m` is a letter, so the lookbehind above would not let the token match.
_SGR_TOKENS = re.compile(r"(\x1b\[[0-9;]*m)(?:" + _TOKEN_FORMATS + ")")
# PEM private keys (ssh, TLS), with or without their END line.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*\Z)", re.S
)
# Webhook URLs whose path is the secret (Slack, Discord): keep the host, drop the rest.
_WEBHOOK = re.compile(
    r"(?i)\b((?:hooks\.slack\.com/(?:services|workflows|triggers)/|discord(?:app)?\.com/api/webhooks/))[^\s\"'<>]+"
)

# scheme://user:password@host  ->  scheme://[redacted]@host
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]+@")

# --token X, --hf-token=X, --password X, --api-key X, --secret X, --db-password X ...
# The secret word must END the flag name, so `--max-new-tokens 512` or `--tokenizer x` stay.
_FLAG = re.compile(
    r"(?i)(?<![\w-])(--?(?:[a-z0-9]+[-_])*"
    r"(?:token|password|passwd|passphrase|secret|api[-_]?key|apikey|access[-_]?key"
    r"|secret[-_]?key|private[-_]?key|auth|credentials?)"
    r")(=|[ \t]+)(?!--?[a-z])" + _VALUE
)

# Environment-style assignments: HF_TOKEN=…, AWS_SECRET_ACCESS_KEY=…, PASSWORD=… (upper case,
# as environments and .env files write them) …
_ENV = re.compile(
    r"(?<![\w-])("
    r"[A-Z0-9_]*_(?:KEY|TOKEN|SECRET|PASS|CREDENTIALS)"
    r"|[A-Z0-9_]*(?:PASSWORD|PASSWD)"  # PGPASSWORD=, MYSQL_PWD aside
    r"|TOKEN|SECRET|APIKEY"
    r")([ \t]*[=:][ \t]*)" + _VALUE  # NAME=value, NAME = value, NAME: value (YAML, .env, dumps)
)
# … and the lower-case names used in URL queries, config dumps and keyword arguments
# (`?token=…`, `password=…`, `api_key=…`).  `pad_token=<pad>` is left alone: the lookbehind
# requires the name to start the word.
_KEYWORD = re.compile(
    r"(?i)(?<![\w-])("
    r"token|access_token|auth_token|hf_token|api_token|id_token|refresh_token|use_auth_token"
    r"|api_key|apikey|secret|client_secret|(?:[a-z0-9]+_)*(?:secret_key|secret_access_key|private_key)"
    r"|(?:[a-z0-9]+_)*(?:password|passwd)"
    r")([ \t]*=[ \t]*)" + _VALUE
)
# `password: …`, `api_key: …` in YAML / config dumps (not plain `token:`, which error messages
# use for a parser's token).
_COLON_KEY = re.compile(
    r"(?i)(?<![\w-])((?:[a-z0-9]+[-_])*(?:password|passwd|secret|secret[-_]?key|secret[-_]access[-_]key"
    r"|api[-_]?key|access[-_]?key|private[-_]?key|auth[-_]?token|access[-_]?token|hf[-_]token))"
    r"([ \t]*:[ \t]*)" + _VALUE
)
# JSON / dict style: "token": "…", 'password': '…'
_QUOTED_KEY = re.compile(
    r"""(?i)(["'])((?:[a-z0-9]+[-_])*(?:token|password|passwd|secret|api[-_]?key|apikey))\1"""
    r"""(\s*:\s*)(["'])[^"'\n]*\4"""
)
# Authorization: Bearer …  /  Authorization: Basic …  /  Authorization: token …
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?:(bearer|basic|token|digest)\s+)?"
    r"""[^\s"',;]+"""
)
# `wandb login KEY`, `huggingface-cli login --token KEY` (the flag is covered above), `hf auth login
# KEY`, `docker login -p KEY`: the positional argument of a CLI login is the key itself.
_LOGIN = re.compile(
    r"(?i)(?<![\w-])((?:wandb|huggingface-cli|hf|comet|neptune)(?:[ \t]+auth)?[ \t]+login"
    r"(?:[ \t]+--?(?:relogin|anonymously|host[ =]\S+|cloud|verify|add-to-git-credential)\b)*[ \t]+)"
    r"(?!--?[a-z])(?:\[redacted\]|[A-Za-z0-9_.~+/-]{4,}(?![^\s\"',;`]))"  # a bare key, not `loss=0.5`
)
# A password glued to `-p` (mysql / mysqldump / mariadb `-pSECRET`) or after `sshpass -p`, `docker
# login -p`: only in those commands, since `-p 8080` is a port elsewhere.
_DASH_P = re.compile(
    r"(?i)(?<![\w-])((?:mysql|mysqldump|mariadb|mariadb-dump)\b[^\n]*?[ \t]-p)(?![ \t])(?!\[redacted\])"
    + _VALUE
    + r"|(?<![\w-])((?:sshpass|docker[ \t]+login\b[^\n]*?)[ \t]+-p[ \t]*)"
    + _VALUE
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?=[A-Za-z0-9._~+/-]*\d)[A-Za-z0-9._~+/-]{8,}=*")


def _env_sub(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def _auth_sub(match: re.Match[str]) -> str:
    scheme = match.group(2)
    return f"{match.group(1)}{scheme + ' ' if scheme else ''}{REDACTED}"


def redact(text: str) -> str:
    """Return *text* with every secret-looking value replaced by ``[redacted]``.

    Call on any job-provided text before it is shown, logged or stored.  Never raises.
    """
    if not text:
        return text
    out = _PRIVATE_KEY.sub(REDACTED, text)
    out = _WEBHOOK.sub(lambda m: f"{m.group(1)}{REDACTED}", out)
    out = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{REDACTED}@", out)
    out = _AUTH_HEADER.sub(_auth_sub, out)
    out = _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", out)
    out = _QUOTED_KEY.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{REDACTED}{m.group(4)}",
        out,
    )
    out = _FLAG.sub(_env_sub, out)
    out = _LOGIN.sub(lambda m: f"{m.group(1)}{REDACTED}", out)
    out = _DASH_P.sub(lambda m: f"{m.group(1) or m.group(2)}{REDACTED}", out)
    out = _ENV.sub(_env_sub, out)
    out = _KEYWORD.sub(_env_sub, out)
    out = _COLON_KEY.sub(_env_sub, out)
    out = _SGR_TOKENS.sub(lambda m: f"{m.group(1)}{REDACTED}", out)
    return _TOKENS.sub(REDACTED, out)


class SafeLogFilter(logging.Filter):
    """A handler filter: every log line is redacted and terminal-safe.

    Log messages quote job text (names, titles, server error bodies). Attach it to every
    handler that writes them (``peft-notify``'s logging setup does, see
    :func:`install_log_filter`); it rewrites the record's message once, so all handlers see
    the clean text. Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from peft_notify.termsafe import printable

        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it for logging's own error report
            return True
        clean = printable(redact(message), multiline=True)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = printable(redact(text), multiline=True)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add :class:`SafeLogFilter` to every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, SafeLogFilter) for f in handler.filters):
            handler.addFilter(SafeLogFilter())
