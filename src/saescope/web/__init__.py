"""`saescope serve`: a browser UI and a JSON API over one run (issue 13).

- `run`: the run's parts, found through the run layout (store, SAE, eval, index);
- `context`: what the server knows and computes, without HTTP (index queries, inspections);
- `worker`: the one thread that runs the model, and the bounded line of generations;
- `steering`: unsteered, steered and control generations advancing token by token;
- `limits`: the limits of one request, and the error naming a limit;
- `security`: the access token and the loopback Host check;
- `schemas`, `api`: the JSON API (OpenAPI schema at /openapi.json);
- `pages`: the HTML pages and fragments, rendered by `saescope.render`;
- `events`: server-sent events; `app`: the FastAPI application; `serve`: the stage function.

Only `serve` is imported by the command line, and it imports FastAPI and uvicorn (the `web`
extra) when it runs: nothing else in saescope needs them.
"""
