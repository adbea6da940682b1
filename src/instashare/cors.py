"""CORS for browser clients on other origins (a tus uploader on another site, say).

Off unless CORS_ALLOW_ORIGINS names origins: a same-origin page needs none of it. Credentials
are bearer tokens sent by the page's script, never cookies, so no credentialed CORS.
"""

from __future__ import annotations

from litestar.config.cors import CORSConfig

from instashare.config import Settings
from instashare.uploads.protocol import REQUEST_HEADERS, RESPONSE_HEADERS

# Downloads' headers a script reads (names, sizes, resuming), besides the tus ones.
_DOWNLOAD_HEADERS = ("Content-Disposition", "Content-Length", "Content-Range", "ETag")


def cors_config(settings: Settings) -> CORSConfig | None:
    origins = settings.cors_origins
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["*"],
        allow_headers=["Authorization", *REQUEST_HEADERS],
        expose_headers=[*RESPONSE_HEADERS, *_DOWNLOAD_HEADERS],
        allow_credentials=False,
        max_age=600,
    )
