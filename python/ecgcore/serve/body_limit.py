"""ASGI middleware shared by ``ecgcore serve`` and ``ecgcore app``: request bodies over a limit get a 413.

The declared ``Content-Length`` is checked before a byte of the body is read (a 320 MB upload is refused at
once, not spooled to disk first); a chunked body without a length is counted as it streams and cut off at
the limit.
"""
from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """Raised from the counting ``receive`` when a streamed body passes the limit."""

    def __init__(self, message: str):
        super().__init__(status_code=413, detail=message)
        self.extra = {}


class BodyLimitMiddleware:
    """413 ``{"error": ...}`` for bodies over the limit.

    Parameters
    ----------
    app : the ASGI app.
    max_body : limit of every request body (bytes).
    max_upload : limit of the routes in ``upload_paths`` (file uploads).
    upload_paths : paths that take uploads.
    message : the refusal's text (default: the limit in bytes); render : ``render(message) -> Response``
        (default: JSON ``{"error": message}``).
    """

    def __init__(self, app, max_body: int, max_upload: int, upload_paths=(), message: str | None = None,
                 render=None):
        self.app, self.max_body, self.max_upload = app, int(max_body), int(max_upload)
        self.upload_paths = frozenset(upload_paths)
        self.message = message
        self.render = render or (lambda text: JSONResponse({"error": text}, status_code=413))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["path"] in self.upload_paths
        limit = self.max_upload if upload else self.max_body
        message = self.message or \
            f"Request body too large: at most {limit} bytes{' per upload' if upload else ''} are accepted"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self.render(message)(scope, receive, send)
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(message)
            return msg

        async def tracked_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # raised by counted_receive outside any handler
            if started:
                raise
            await self.render(exc.detail)(scope, receive, send)
