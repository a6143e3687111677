"""schemathesis hooks for scripts/contract (SCHEMATHESIS_HOOKS=contract_hooks).

schemathesis.toml fixes a few body fields to real test data (a site's id, a
genuine check-in or join code, a push service's URL and a browser's keys),
and schemathesis 4.32.5 applies such `body.*` parameters to the bodies it
generates in the fuzzing and stateful phases, but not to those the examples
and coverage phases derive from the schema alone. Those could then never
succeed: a made-up site id is 422 "no such site" whatever else the body holds.
This hook gives those phases' valid bodies the same fixed fields; their
invalid bodies are left as generated, so what they test is unchanged.
"""

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    meta = case.meta
    if (
        meta is None
        or meta.phase.name not in ("examples", "coverage")
        or not meta.generation.mode.is_positive
        or not isinstance(case.body, dict)
    ):
        return
    config = case.operation.schema.config.operations.get_for_operation(case.operation)
    fixed = {
        key.removeprefix("body."): value
        for key, value in config.parameters.items()
        if key.startswith("body.") and "." not in key.removeprefix("body.")
    }
    if not fixed:
        return
    # A body of one of several shapes (a join code or a union's id) keeps only
    # the fixed fields: another shape's field beside them makes it invalid.
    schema = case.operation.body[0].definition.get("schema", {})
    if "oneOf" in schema:
        case.body = {}
    case.body.update(fixed)
