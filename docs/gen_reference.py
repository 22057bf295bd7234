"""Writes the Reference pages at `mkdocs build` time (mkdocs-gen-files), from the code itself, so they cannot
drift from it: the CLI from the typer app, the HTTP API from the server's OpenAPI schema, the configuration
keys from config.py (with the comments that explain them) and the shipped profiles from their TOML files."""

from __future__ import annotations

import ast
import inspect
import json
import tempfile
import tomllib
import warnings
from collections.abc import Iterator
from importlib import resources

import mkdocs_gen_files
import typer
from pydantic import BaseModel

# FastAPI builds a pydantic model of /v1/extract's form, whose field `schema` shadows BaseModel.schema: harmless.
warnings.filterwarnings("ignore", message='Field name "schema"')

from vlmsearch import config  # noqa: E402
from vlmsearch.cli import app  # noqa: E402


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


# CLI -------------------------------------------------------------------------------------------------


def commands(group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every command of a typer group, subgroups walked (typer 0.2x carries its own click)."""
    for name, command in group.commands.items():
        if command.hidden:
            continue
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def param_row(param, ctx) -> str:
    if param.param_type_name == "argument":
        name = f"`{param.name.upper()}`"
    else:
        name = ", ".join(f"`{opt}`" for opt in (*param.opts, *param.secondary_opts))
    kind = "flag" if getattr(param, "is_flag", False) else param.display_type(ctx).strip("<>")
    if param.multiple:
        kind += ", repeatable"
    default = param.default if param.default not in (None, (), [], False) and not callable(param.default) else ""
    required = " (required)" if param.required else ""
    return f"| {name}{required} | {cell(kind)} | {cell(default)} | {cell(getattr(param, 'help', '') or '')} |"


def cli_page() -> str:
    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from the typer app (`vlmsearch/cli/`) when the site is built. `vlmsearch COMMAND --help` prints the same in the terminal.",
        "",
        "## Global options",
        "",
        "| option | type | default | what |",
        "|---|---|---|---|",
    ]
    ctx = root.make_context("vlmsearch", [], resilient_parsing=True)
    lines += [param_row(p, ctx) for p in root.params if p.name not in ("install_completion", "show_completion")]
    for path, command in commands(root):
        title = " ".join(path)
        lines += ["", f"## `vlmsearch {title}`", "", inspect.cleandoc(command.help or "").split("\f")[0], ""]
        if command.params:
            lines += ["| argument / option | type | default | what |", "|---|---|---|---|"]
            ctx = command.make_context(title, [], resilient_parsing=True)
            lines += [param_row(p, ctx) for p in command.params]
    return "\n".join(lines) + "\n"


# HTTP ------------------------------------------------------------------------------------------------


def openapi_schema() -> dict:
    from vlmsearch.engine import Engine
    from vlmsearch.server import create_app
    from vlmsearch.server.settings import ServerSettings

    with tempfile.TemporaryDirectory() as store:  # the schema needs an app, not models or data
        return create_app(Engine.from_config(store=store), ServerSettings(), warm_up=False).openapi()


def schema_fields(schema: dict, spec: dict) -> list[tuple[str, str, bool, str]]:
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    required = set(schema.get("required", ()))
    rows = []
    for name, field in schema.get("properties", {}).items():
        kinds = [f.get("format") or f.get("type", "") for f in field.get("anyOf", [field])]
        rows.append((name, " or ".join(k for k in kinds if k and k != "null"), name in required, field.get("description", "")))
    return rows


def http_page(spec: dict) -> str:
    lines = [
        "# HTTP API reference",
        "",
        "Generated from the server's OpenAPI schema when the site is built "
        "([openapi.json](openapi.json); a running server serves it at `/openapi.json` and an explorer at `/docs`). "
        'Errors always have one shape, `{"error": {"code", "message"}}`; the Serving guide says which status means what.',
    ]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            lines += ["", f"## `{method.upper()} {path}`", "", op.get("summary", ""), "", inspect.cleandoc(op.get("description", ""))]
            params = op.get("parameters", [])
            body = op.get("requestBody", {}).get("content", {})
            if params or body:
                lines += ["", "| field | in | type | required | what |", "|---|---|---|---|---|"]
                for p in params:
                    kind = p.get("schema", {}).get("type") or " or ".join(s.get("type", "") for s in p.get("schema", {}).get("anyOf", []))
                    lines.append(f"| `{p['name']}` | {p['in']} | {cell(kind)} | {'yes' if p.get('required') else ''} | {cell(p.get('description', ''))} |")
                for media, content in body.items():
                    for name, kind, needed, what in schema_fields(content.get("schema", {}), spec):
                        lines.append(f"| `{name}` | body ({media}) | {cell(kind)} | {'yes' if needed else ''} | {cell(what)} |")
            codes = ", ".join(f"{code} {cell(r.get('description', ''))}" for code, r in op.get("responses", {}).items())
            lines += ["", f"Responses: {codes}."]
    return "\n".join(lines) + "\n"


# Configuration ---------------------------------------------------------------------------------------


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's comment in config.py: the comment lines just above it and the one at its line's end."""
    source = inspect.getsource(model)
    lines, comments = source.splitlines(), {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, index = [], node.lineno - 2
            while index >= 0 and lines[index].strip().startswith("#"):
                above.insert(0, lines[index].strip().lstrip("# "))
                index -= 1
            _, _, trailing = lines[node.end_lineno - 1].partition("  # ")
            comments[node.target.id] = " ".join([*above, trailing]).strip()
    return comments


def config_page() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `vlmsearch/config.py` when the site is built. Every key can be set "
        "for one run with `--set SECTION.KEY=VALUE` (repeatable; an unknown key or a bad value is refused with the keys "
        "the section has), from Python with `Engine.from_config(overrides=[...])`, and the models of each role with a profile "
        "(`--profile offline|hf-cpu|my.toml`).",
    ]
    for section, field in config.Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or section == "profile":
            continue
        comments = field_comments(model)
        lines += [
            "",
            f"## `{section}`",
            "",
            inspect.cleandoc(model.__doc__ or ""),
            "",
            "| key | type | default | what and why |",
            "|---|---|---|---|",
        ]
        for key, spec in model.model_fields.items():
            kind = getattr(spec.annotation, "__name__", str(spec.annotation))
            lines.append(f"| `{section}.{key}` | {cell(kind)} | `{spec.default!r}` | {cell(comments.get(key, ''))} |")
    lines += ["", "## Shipped profiles", "", "A profile names a backend and a model for each role (the Profiles guide shows how to write one).", ""]
    for entry in sorted(resources.files("vlmsearch.profiles").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            profile = tomllib.loads(entry.read_text(encoding="utf-8"))
            lines += [
                f"### `{entry.name.removesuffix('.toml')}`",
                "",
                cell(profile.get("description", "")),
                "",
                "| role | backend | model | options |",
                "|---|---|---|---|",
            ]
            for role, spec in profile.get("roles", {}).items():
                lines.append(f"| {role} | {spec['backend']} | `{spec['model']}` | {cell(json.dumps(spec.get('options', {})) if spec.get('options') else '')} |")
            lines.append("")
    return "\n".join(lines) + "\n"


spec = openapi_schema()
pages = {
    "reference/cli.md": cli_page(),
    "reference/http.md": http_page(spec),
    "reference/config.md": config_page(),
    "reference/openapi.json": json.dumps(spec, indent=1),
}
for name, text in pages.items():
    with mkdocs_gen_files.open(name, "w") as page:
        page.write(text)
