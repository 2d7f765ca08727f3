"""Logging set-up shared by the entry points (the app, the CLI, training jobs)."""

from __future__ import annotations

import logging

from mmdemo.redact import redact_text

# libraries that log request URLs as given (httpx: "HTTP Request: GET http://user:pass@...")
URL_LOGGERS = ("httpx", "httpx2", "httpcore", "openai._base_client")


class RedactURLs(logging.Filter):
    """Rewrites a record's text with every URL in it redacted, so a login or key a remote
    server's URL carries never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted is left to logging to report
            return True
        record.msg, record.args = redact_text(text), None
        return True


def quiet_library_logs() -> None:
    """bitsandbytes warns on import that an optional Hub-downloaded CPU kernel is missing;
    mmdemo never downloads kernels at run time, so the warning only alarms users. The HTTP
    clients' request lines get their URLs redacted."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactURLs) for f in logger.filters):
            logger.addFilter(RedactURLs())
