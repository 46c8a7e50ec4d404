"""The commands a deployer runs before pointing an application at glasslog: declare the deployment, issue an
operator key bound to it (refused for an undeclared one), and the gateway's options."""

from __future__ import annotations

from typer.testing import CliRunner

from glasslog.cli import app


def test_declare_bind_and_gateway_help(tmp_path):
    run = CliRunner().invoke
    d = str(tmp_path / "log")
    assert run(app, ["init", "-d", d, "--origin", "test.example/cli"]).exit_code == 0
    r = run(app, ["keys", "create", "--role", "operator", "--name", "app", "--deployment", "acme.example/a", "-d", d])
    assert r.exit_code == 2 and "declare it first" in r.output
    r = run(app, ["deployments", "declare", "acme.example/a", "--visibility", "private", "-d", d])
    assert r.exit_code == 0 and "private" in r.output
    r = run(app, ["deployments", "declare", "acme.example/a", "--visibility", "public-service", "-d", d])
    assert r.exit_code == 2 and "cannot change" in r.output
    r = run(app, ["keys", "create", "--role", "operator", "--name", "app", "--deployment", "acme.example/a", "-d", d,
                  "--json"])
    assert r.exit_code == 0 and '"deployments": [\n    "acme.example/a"\n  ]' in r.output
    r = run(app, ["keys", "create", "--role", "researcher", "--name", "lab", "--deployment", "acme.example/a", "-d", d])
    assert r.exit_code == 2
    r = run(app, ["deployments", "list", "--json", "-d", d])
    assert r.exit_code == 0 and "acme.example/a" in r.output
    r = run(app, ["gateway", "--upstream", "ftp://x", "--deployment", "acme.example/a", "-d", d])
    assert r.exit_code == 2 and "http://" in r.output
    r = run(app, ["gateway", "--upstream", "http://127.0.0.1:9", "--deployment", "nobody.example/x", "-d", d])
    assert r.exit_code == 2 and "not declared" in r.output
    r = run(app, ["gateway", "--upstream", "http://127.0.0.1:9", "--deployment", "acme.example/a", "--model", "x=y", "-d", d])
    assert r.exit_code == 2 and "NAME=sha256:" in r.output


def test_cli_messages_are_not_wrapped_when_redirected(monkeypatch):
    """A long CLI message printed to a file or pipe (no $COLUMNS) stays one line; on a terminal Rich wraps it."""
    import io

    from glasslog.cli.common import PlainWhenPiped

    monkeypatch.delenv("COLUMNS", raising=False)
    message = "span 0123456789abcdef: " + "a long explanation " * 12
    piped = io.StringIO()
    PlainWhenPiped(file=piped).print(message, highlight=False)
    assert piped.getvalue() == message + "\n"
    tty = io.StringIO()
    PlainWhenPiped(file=tty, force_terminal=True, width=80, color_system=None).print(message, highlight=False)
    assert tty.getvalue().count("\n") > 1
