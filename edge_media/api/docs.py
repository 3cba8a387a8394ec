"""``/docs``: the API's interactive documentation, served entirely by the hub.

FastAPI's default page loads Swagger UI from a CDN, which a hub on a home network without internet (or behind a
strict firewall) cannot reach: the page would be blank. A Swagger UI 5 build (it must read OpenAPI 3.1, which
FastAPI writes; 4.x refuses it) ships as package data of the ``fastapi-offline`` wheel (MIT), so the page and
its scripts come from the hub itself.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS = f"{DOCS_PATH}/assets"
SWAGGER_UI = files("fastapi_offline") / "static"  # swagger-ui-bundle.js, swagger-ui.css, favicon.png


def mount_docs(app: FastAPI, openapi_url: str) -> None:
    app.mount(ASSETS, StaticFiles(directory=str(SWAGGER_UI)), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} – docs",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png")
