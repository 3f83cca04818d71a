"""The pages beside the APIs: the contracts served, Swagger UI offline, and an index.

    /openapi.yaml, /openapi.json   the vendor APIs' spec (what the mock serves and checks)
    /__admin/openapi.yaml          the admin API's spec
    /docs                          Swagger UI on both specs, from the swagger-ui-bundle package (no CDN)
    /__admin/ui                    the dashboard: state, journal, rules and sessions, through the admin API
    /                              where everything is

Each is a small static answer built once at start, served before the
exchange's stages for GET and HEAD. With the bundled fixtures, the docs page comes
with the demo credentials filled in, so "Try it out" works at once.
"""

from __future__ import annotations

import html
import json
import mimetypes
from pathlib import Path

import yaml

from mockserver.http.render import WireResponse
from mockserver.resources import default_fixtures_path
from mockserver.settings import Settings

ASSETS = "/docs/assets/"
YAML = "application/yaml"
SHIPPED_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png", "favicon-16x16.png")

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>mockserver: API docs</title>
  <link rel="stylesheet" href="{assets}swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}swagger-ui-bundle.js"></script>
  <script src="{assets}swagger-ui-standalone-preset.js"></script>
  <script>
    const credentials = {credentials};
    window.ui = SwaggerUIBundle({{
      urls: [
        {{url: "/openapi.yaml", name: "Vendor APIs: Relay CDM and eGain Customer Manager"}},
        {{url: "/__admin/openapi.yaml", name: "Admin API: sessions, faults, journal, scenarios"}}
      ],
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      onComplete: () => {{
        const schemes = window.ui.specSelectors.securityDefinitions();
        for (const [scheme, value] of Object.entries(credentials)) {{
          const schema = schemes && schemes.get(scheme);
          if (schema && schema.get("type") === "oauth2") {{  // an OAuth token as if its flow had run
            const token = {{access_token: value, token_type: "Bearer"}};
            window.ui.authActions.authorizeOauth2({{auth: {{name: scheme, schema, scopes: []}}, token}});
          }} else {{
            window.ui.preauthorizeApiKey(scheme, value);
          }}
        }}
      }}
    }});
  </script>
</body>
</html>
"""

INDEX_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>mockserver</title></head>
<body>
  <h1>mockserver</h1>
  <p>A stateful contract mock of Relay Network CDM and eGain Customer Manager.</p>
  <ul>
    <li><a href="/docs">/docs</a>: the APIs in Swagger UI (try them out here){credentials}</li>
    <li><a href="/__admin/ui">/__admin/ui</a>: the dashboard (customers, the live request journal, rules, sessions)</li>
    <li><a href="/openapi.yaml">/openapi.yaml</a>, <a href="/openapi.json">/openapi.json</a>: the vendor APIs' contract</li>
    <li><a href="/__admin/openapi.yaml">/__admin/openapi.yaml</a>: the admin API's contract</li>
    <li>APIs: <code>/cdm/...</code> (also under <code>/platform/v3/api/cdm/...</code>), <code>/core/customermgr/v3/...</code></li>
    <li>Admin: <code>/__admin/...</code> (sessions, faults, requests, scenarios, reset)</li>
  </ul>
</body>
</html>
"""


class Pages:
    def __init__(self, settings: Settings, demo_schemes: dict[str, str]):
        """`demo_schemes`: the families' demo credentials by security scheme, filled in when the bundled fixtures are served."""
        vendor_text = settings.spec.read_bytes()
        demo = settings.fixtures.resolve() == default_fixtures_path().resolve()
        credentials = json.dumps(demo_schemes if demo else {})
        listed = " with the demo credentials filled in" if demo else ""
        self._pages: dict[str, tuple[str, bytes]] = {
            "/openapi.yaml": (YAML, vendor_text),
            "/openapi.json": ("application/json", json.dumps(yaml.safe_load(vendor_text), ensure_ascii=False).encode()),
            "/__admin/openapi.yaml": (YAML, settings.admin_spec.read_bytes()),
            "/docs": ("text/html; charset=utf-8", DOCS_PAGE.format(assets=ASSETS, credentials=credentials).encode()),
            "/": ("text/html; charset=utf-8", INDEX_PAGE.format(credentials=html.escape(listed)).encode()),
            "/__admin/ui": ("text/html; charset=utf-8", (Path(__file__).parent / "dashboard.html").read_bytes()),
        }
        self._pages["/docs/"] = self._pages["/docs"]
        self._assets = _swagger_assets()
        icon = self._assets.get("favicon-32x32.png")
        if icon is not None:  # browsers ask for it on every page: answered, so it never shows as an unmatched request
            self._pages["/favicon.ico"] = ("image/png", icon.read_bytes())

    def answer(self, method: str, path: str) -> WireResponse | None:
        """The page at `path` for GET or HEAD (HEAD: the headers alone), or None when `path` is not a page."""
        if method not in ("GET", "HEAD"):
            return None
        found = self._pages.get(path) or self._asset(path)
        if found is None:
            return None
        content_type, body = found
        answer = WireResponse(200, [("Content-Type", content_type), ("Cache-Control", "no-cache")], body)
        return answer.headed() if method == "HEAD" else answer

    def _asset(self, path: str) -> tuple[str, bytes] | None:
        if not path.startswith(ASSETS):
            return None
        source = self._assets.get(path[len(ASSETS) :])
        if source is None:
            return None
        return mimetypes.guess_type(source.name)[0] or "application/octet-stream", source.read_bytes()


def _swagger_assets() -> dict[str, Path]:
    """Swagger UI's files from the swagger-ui-bundle package (Swagger UI 5: OpenAPI 3.1), by name."""
    import swagger_ui_bundle

    folder = Path(str(swagger_ui_bundle.swagger_ui_path))
    return {name: folder / name for name in SHIPPED_ASSETS if (folder / name).is_file()}
