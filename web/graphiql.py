"""Self-hosted GraphiQL page: every asset comes from ``STATIC_DIR``, nothing from a CDN.

Vendored from npm (licenses beside them in ``static/graphiql/LICENSE.*.txt``):
graphiql 4.1.2 UMD build (bundles graphql and the graphql-ws client) and
react / react-dom 18.3.1 UMD builds. Mount ``STATIC_DIR`` with Starlette's
``StaticFiles`` under the same prefix that is passed to :func:`graphiql_html`.
"""

from __future__ import annotations

import html
from pathlib import Path

STATIC_DIR: Path = Path(__file__).resolve().parent / "static" / "graphiql"

# Load order matters: GraphiQL's UMD bundle expects the React/ReactDOM globals.
_SCRIPTS = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js")
_STYLESHEETS = ("graphiql.min.css",)

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Parley GraphiQL</title>
    <link rel="icon" href="data:," />
__STYLESHEETS__
    <style>
      body { margin: 0; height: 100vh; overflow: hidden; }
      #graphiql { height: 100vh; }
    </style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL...</div>
__SCRIPTS__
    <script>
      (function () {
        "use strict";
        // The page is served by the GraphQL endpoint itself: GET renders it, POST runs
        // operations, and the same path speaks graphql-transport-ws for subscriptions.
        var url = window.location.origin + window.location.pathname;
        var subscriptionUrl = url.replace(/^http/, "ws"); // http -> ws, https -> wss
        var params = new URLSearchParams(window.location.search);

        // Keep query/variables in the URL so a link reproduces the editor state.
        // Headers are deliberately left out: they usually carry a bearer token.
        function updateURL(key, value) {
          if (value) { params.set(key, value); } else { params.delete(key); }
          var search = params.toString();
          history.replaceState(null, "", window.location.pathname +
            (search ? "?" + search : "") + window.location.hash);
        }

        var defaultQuery = [
          "# Welcome to Parley's GraphiQL.",
          "#",
          "# Run: Ctrl-Enter or the play button.",
          "# Autocomplete: Ctrl-Space.",
          "# Subscriptions use WebSocket",
          "# (graphql-transport-ws).",
          "#",
          "# To authenticate, put this in the",
          "# Headers tab below:",
          "#   {\\"Authorization\\": \\"Bearer <token>\\"}",
          "# It is sent with each HTTP request and as",
          "# the WebSocket connection_init payload.",
          ""
        ].join("\\n");

        var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: subscriptionUrl });

        ReactDOM.createRoot(document.getElementById("graphiql")).render(
          React.createElement(GraphiQL, {
            fetcher: fetcher,
            defaultQuery: defaultQuery,
            query: params.get("query") || undefined,
            variables: params.get("variables") || undefined,
            onEditQuery: function (value) { updateURL("query", value); },
            onEditVariables: function (value) { updateURL("variables", value); },
            isHeadersEditorEnabled: true,
            defaultEditorToolsVisibility: "headers",
            // Tokens stay out of localStorage unless the user opts in via Settings.
            shouldPersistHeaders: false,
            showPersistHeadersSettings: true,
            inputValueDeprecation: true
          })
        );
      })();
    </script>
  </body>
</html>
"""


def graphiql_html(static_prefix: str = "/graphiql-static") -> str:
    """Return the GraphiQL page, loading its assets from ``{static_prefix}/<file>`` only."""
    prefix = html.escape(static_prefix.rstrip("/"), quote=True)
    stylesheets = "\n".join(f'    <link rel="stylesheet" href="{prefix}/{name}" />' for name in _STYLESHEETS)
    scripts = "\n".join(f'    <script src="{prefix}/{name}"></script>' for name in _SCRIPTS)
    return _PAGE.replace("__STYLESHEETS__", stylesheets).replace("__SCRIPTS__", scripts)
