"""Send a lesson's requests: to a URL through the whole stack, to one view, or to a WSGI app.

``lab.get("/")`` goes through URL routing and every middleware, as a browser's request does
(Django's test ``Client``; one per user, logged in once). ``lab.get(SomeView, "/?page=2")``
calls just that view with a request from ``RequestFactory``, which is how a lesson times a
queryset change without the rest of the stack. ``lab.get(app, "/healthz")`` hands a WSGI
environ to a handler, as a server does. Template and DRF responses come back rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Requests"]


class Requests:
    """Keep the clients, views and environs a lab's requests reuse; send one request."""

    def __init__(self) -> None:
        self._clients: dict[Any, Any] = {}
        self._views: dict[type, Callable[..., Any]] = {}
        self._environs: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
        self._factory: Any = None

    def send(
        self,
        method: str,
        target: str | type | Callable[..., Any],
        path: str = "/",
        *,
        user: Any = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> Any:
        """Send one request and return Django's response (rendered), whatever ``target`` is."""
        from django.core.handlers.base import BaseHandler
        from django.views import View

        headers = dict(headers or {})
        if isinstance(target, str):
            if path != "/":
                raise TypeError(
                    f"lab.{method}(url) takes the URL alone: lab.{method}('/reviews/?page=2')."
                )
            return getattr(self._client(user), method)(target, data, headers=headers)
        if isinstance(target, BaseHandler):
            return self._through_wsgi(target, method, path, headers, data)
        if isinstance(target, type) and issubclass(target, View):
            view = self._views.get(target)
            if view is None:
                view = self._views[target] = target.as_view()
            target = view
        if not callable(target):
            raise TypeError(
                f"lab.{method}() takes a URL, a view (class or function) or a WSGI handler, "
                f"not {type(target).__name__}."
            )
        request = getattr(self._request_factory(), method)(path, data, headers=headers)
        return self._call_view(target, request, user)

    def _client(self, user: Any) -> Any:
        from django.conf import settings
        from django.test import Client
        from django.test.client import ClientHandler

        key = None if user is None else (type(user), user.pk)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = Client()
            if user is not None:
                client.force_login(user)
        # A handler loads MIDDLEWARE once; under override_settings(MIDDLEWARE=...) it must
        # load the new list, as a server started with those settings would.
        middleware = tuple(settings.MIDDLEWARE)
        if getattr(client, "perflab_middleware", middleware) != middleware:
            client.handler = ClientHandler(client.handler.enforce_csrf_checks)
        client.perflab_middleware = middleware
        return client

    def _request_factory(self) -> Any:
        if self._factory is None:
            from django.test import RequestFactory

            self._factory = RequestFactory()
        return self._factory

    def _call_view(self, view: Callable[..., Any], request: Any, user: Any) -> Any:
        from django.contrib.auth.models import AnonymousUser

        request.user = AnonymousUser() if user is None else user
        response = view(request)
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()
        return response

    def _through_wsgi(
        self, app: Any, method: str, path: str, headers: dict[str, str], data: Any
    ) -> Any:
        # One environ per GET of a URL with headers, copied for each request: middleware may
        # write into it (CSRF does), and building it anew would be charged to the app measured.
        # A request with a body gets a new one: its body can be read only once.
        key = (path, tuple(sorted(headers.items())))
        environ = self._environs.get(key) if method == "get" and data is None else None
        if environ is None:
            request = getattr(self._request_factory(), method)(path, data, headers=headers)
            environ = request.environ
            if method == "get" and data is None:
                self._environs[key] = environ
        response = app(dict(environ), _start_response)
        b"".join(response)  # a server reads the whole body before it closes the response
        response.close()  # which fires request_finished, as after a real request
        return response


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    """Stand in for the server's callback: the response Django returns holds the same data."""
