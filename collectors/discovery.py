"""What the API server serves, and a list / watch call for any group version of a kind.

Fed by: the API server's discovery documents (`/api/v1`, `/apis/<group>/<version>`: the
APIResourceList of a group version, 404 when the server does not serve it), read with the
`kubernetes` client's ApiClient (its configuration, credentials and connection pool).
Feeds: `collectors.kubeapi`, which picks for each kind it knows the newest group version the
server serves (a 1.20 cluster serves EndpointSlice in discovery.k8s.io/v1beta1, CronJob in
batch/v1beta1 only), and `collectors.watching`, which calls the list functions made here.

Why not the client's generated `*Api` classes: they only know the versions of their release
(kubernetes 37 has no BatchV1beta1Api or DiscoveryV1beta1Api), and an older cluster serves older
versions. The list function takes the keyword arguments the generated list functions take (the
ones `collectors.watching` uses) and returns the raw response, as they do with `_preload_content=False`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

HTTP_NOT_FOUND = 404


def api_path(group_version: str) -> str:
    """The path of a group version: `/api/v1` for the core group, `/apis/<group>/<version>` else."""
    return f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"


def _get(api_client: client.ApiClient, path: str, *, query: list[tuple[str, str]] | None = None,
         timeout: Any = None) -> Any:
    """Blocking GET of `path`; the raw urllib3 response (read it, then release it). ApiException on non-2xx."""
    request = api_client.param_serialize(method="GET", resource_path=path, query_params=query or [],
                                         header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
    response = api_client.call_api(*request, _request_timeout=timeout)
    if not 200 <= response.status <= 299:
        response.read()
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return response.response


def served_resources(api_client: client.ApiClient, group_version: str, *,
                     timeout: float = 10.0) -> frozenset[str] | None:
    """Blocking: the resources (plurals) `group_version` serves; None when the server does not serve
    it (404). Other API and network errors are raised (ApiException, urllib3 errors)."""
    try:
        response = _get(api_client, api_path(group_version), timeout=timeout)
    except ApiException as exc:
        if exc.status == HTTP_NOT_FOUND:
            return None
        raise
    try:
        body = json.loads(response.data)
    finally:
        response.release_conn()
    resources = body.get("resources") if isinstance(body, dict) else None
    if not isinstance(resources, list):
        raise ValueError(f"discovery of {group_version} is not an APIResourceList")
    return frozenset(str(r["name"]) for r in resources
                     if isinstance(r, dict) and isinstance(r.get("name"), str) and "/" not in r["name"])


_QUERY_NAMES = {"_continue": "continue", "allow_watch_bookmarks": "allowWatchBookmarks",
                "resource_version": "resourceVersion", "timeout_seconds": "timeoutSeconds",
                "limit": "limit", "watch": "watch"}


def list_function(api_client: client.ApiClient, *, group_version: str, plural: str) -> Callable[..., Any]:
    """The cluster-wide list (and, with `watch=True`, watch) of `plural` in `group_version`.

    Takes the keyword arguments of the generated list functions that `collectors.watching` passes
    (`limit`, `_continue`, `watch`, `allow_watch_bookmarks`, `resource_version`, `timeout_seconds`,
    `_preload_content`, `_request_timeout`) and returns the raw response."""
    path = f"{api_path(group_version)}/{plural}"

    def list_objects(*, _preload_content: bool = False, _request_timeout: Any = None, **params: Any) -> Any:
        unknown = set(params) - set(_QUERY_NAMES)
        if unknown:
            raise TypeError(f"list of {plural}: unexpected arguments {sorted(unknown)}")
        query = [(_QUERY_NAMES[key], _query_value(value)) for key, value in params.items() if value is not None]
        return _get(api_client, path, query=query, timeout=_request_timeout)

    list_objects.__name__ = f"list_{plural}"
    return list_objects


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
