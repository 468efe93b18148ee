"""turnout's one exception root, and the errors that become OpenAI-shaped HTTP responses."""

from __future__ import annotations

from typing import Any


class TurnoutError(Exception):
    """Every exception turnout defines derives from this: `except TurnoutError` catches them all."""


class ApiError(TurnoutError):
    """An error the client sees as `{"error": {"message", "type", "code", "param"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }
