"""Reading the service in tests as its OpenAPI document describes it: each answer is checked.

`get_documented(client, url, template)` GETs `url` from a Quart test client and validates the
body against the schema the spec documents for the route `template` and the status answered,
so a route test also proves the spec right.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from quart.typing import TestClientProtocol as Client

from orchestr8._web._openapi import openapi_document

SPEC = openapi_document(auth=False)


async def get_documented(client: Client, url: str, template: str) -> tuple[int, Any]:
    """GET `url`, check the body against the documented schema of `template`, return both."""
    response = await client.get(url)
    document = json.loads(await response.get_data(as_text=True))
    operation = SPEC["paths"][template]["get"]["responses"][str(response.status_code)]
    if "$ref" in operation:
        operation = SPEC["components"]["responses"][operation["$ref"].rsplit("/", 1)[1]]
    [(_, content)] = operation["content"].items()
    schema = {**content["schema"], "components": SPEC["components"]}
    Draft202012Validator(schema).validate(document)
    return response.status_code, document
