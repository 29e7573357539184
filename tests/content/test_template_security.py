"""Hostile templates: classic server-side template injection cannot reach Python or files.

Each payload must end in InvalidInput (or harmless output), and no secret held on the
Python side (a module value, a value in the caller's closure, a file) may appear in any
output or message. `test_payloads_work_without_the_sandbox` renders the same payloads
with the sandbox swapped for a plain Jinja environment and shows that they then do leak,
so these tests can fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest
from markupsafe import Markup

from penchant.content import templates
from penchant.content.templates import (
    RenderContext,
    Rendered,
    RenderLimits,
    TemplateSpec,
    compile_template,
    render,
)
from penchant.errors import InvalidInput

SECRET = "module-secret-4d1f9a"
CLOSURE_SECRET = "closure-secret-77b2c0"
FILE_SECRET = "file-secret-0e93aa"
ALL_SECRETS = (SECRET, CLOSURE_SECRET, FILE_SECRET)
HOSTILE_TITLE = "<script>alert('x')</script>"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(FILE_SECRET)
    return path


def context(profile: Mapping[str, Any] | None = None) -> RenderContext:
    token = CLOSURE_SECRET

    def recommend(k: int, surface: str | None) -> Sequence[Mapping[str, Any]]:
        return [{"id": "i1", "title": HOSTILE_TITLE, "url": "https://shop.example/i1", "t": token}]

    def choose_variant(slot: str) -> Mapping[str, Any]:
        return {"id": "v1", "text": "Hello"}

    return RenderContext(
        profile=profile or {"name": "Ann", "tier": "gold"},
        recommend=recommend,
        choose_variant=choose_variant,
        now=datetime(2024, 1, 1, tzinfo=UTC),
    )


def attempt(html: str, limits: RenderLimits | None = None, **parts: Any) -> Rendered:
    """Render, checking that no secret leaks into the result or the error."""
    try:
        out = render(
            compile_template(TemplateSpec("t", html=html, **parts)), context(), limits=limits
        )
    except InvalidInput as exc:
        assert not any(s in str(exc) or s in exc.message for s in ALL_SECRETS)
        raise
    for text in (out.html, out.text, out.subject or ""):
        assert not any(s in text for s in ALL_SECRETS)
    return out


def refused(html: str, limits: RenderLimits | None = None, **parts: Any) -> str:
    with pytest.raises(InvalidInput) as err:
        attempt(html, limits, **parts)
    return err.value.message


# Payloads that reach internals (or a secret) when nothing stops them; `{file}` and `{mod}`
# are filled in with the secret file and this module's name.
SSTI = {
    "str_mro": ("{{ ''.__class__.__mro__ }}", "<class 'object'>"),
    "profile_class": ("{{ profile.__class__ }}", "<class 'dict'>"),
    "recommend_globals": ("{{ recommend.__call__.__globals__.keys()|list }}", "_Sandbox"),
    "recommend_closure": (
        "{{ recommend._call.__self__._ctx.recommend.__closure__[0].cell_contents }}",
        CLOSURE_SECRET,
    ),
    "cycler_globals_open": (
        "{{ cycler.__init__.__globals__.__builtins__.open('{file}').read() }}",
        FILE_SECRET,
    ),
    "import_module_secret": (
        "{{ joiner.__init__.__globals__.__builtins__.__import__('sys').modules['{mod}'].SECRET }}",
        SECRET,
    ),
    "template_reference": ("{{ self._TemplateReference__context }}", "<Context"),
    "format_string": ("{{ '{0.__class__}'.format(profile) }}", "<class 'dict'>"),
    "format_map": ("{{ '{p.__class__.__mro__}'.format_map({'p': profile}) }}", "<class"),
    "mutate_profile": ("{{ profile.update({'tier': 'x'}) }}{{ profile.tier }}", "Nonex"),
}


def _payload(name: str, secret_file: Path) -> str:
    return SSTI[name][0].replace("{file}", str(secret_file)).replace("{mod}", __name__)


@pytest.mark.parametrize("name", list(SSTI))
def test_ssti_payload_is_refused(name: str, secret_file: Path) -> None:
    message = refused(_payload(name, secret_file))
    assert message.startswith("template: html: line 1: ")


@pytest.mark.parametrize("name", list(SSTI))
def test_payloads_work_without_the_sandbox(
    name: str, secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with a plain Environment in place of the sandbox, each payload leaks."""
    monkeypatch.setattr(templates, "_Sandbox", jinja2.Environment)
    out = render(compile_template(TemplateSpec("t", html=_payload(name, secret_file))), context())
    assert SSTI[name][1] in out.text  # the text part: the HTML part escapes the quotes


@pytest.mark.parametrize(
    "html",
    [
        "{{ recommend.__globals__ }}",
        "{{ recommend.__closure__ }}",
        "{{ slot.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ range.__globals__ }}",
        "{{ recommend()[0].__class__.__subclasses__() }}",
        "{{ (recommend|attr('__call__')) }}",
    ],
)
def test_function_internals_are_out_of_reach(html: str) -> None:
    refused(html)


@pytest.mark.parametrize(
    "tag",
    [
        "{% include '{file}' %}",
        "{% extends '{file}' %}",
        "{% import '{file}' as m %}",
        "{% from '{file}' import x %}",
        "{% include ['nothing', '{file}'] %}",
    ],
)
@pytest.mark.parametrize("part", ["html", "text", "subject"])
def test_no_template_can_load_a_file(tag: str, part: str, secret_file: Path) -> None:
    source = tag.replace("{file}", str(secret_file))
    parts = {"html": "ok", part: source}
    with pytest.raises(InvalidInput) as err:
        compile_template(TemplateSpec("t", **parts))
    assert err.value.field == part
    assert "is not allowed (a template cannot load other templates)" in err.value.message
    assert FILE_SECRET not in err.value.message


@pytest.mark.parametrize("name", ["config", "request", "os", "self.__init__"])
def test_framework_globals_are_undefined(name: str) -> None:
    message = refused("{{ " + name + " }}")
    assert "undefined" in message or "unsafe" in message


def test_profile_cannot_be_mutated() -> None:
    for html in (
        "{{ profile.update({'x': 1}) }}",
        "{{ profile.clear() }}",
        "{{ profile.setdefault('x', 1) }}",
        "{{ recommend().append(1) }}",
        "{{ recommend()[0].pop('id') }}",
    ):
        assert "unsafe" in refused(html)


def test_huge_range_is_refused() -> None:
    assert "range() over the limit of 10000 items" in refused(
        "{% for i in range(10**9) %}{{ i }}{% endfor %}"
    )
    assert "range() over the limit" in refused("{{ range(2**62)|length }}")


def test_nested_loops_are_stopped_by_the_time_budget() -> None:
    message = refused(
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        RenderLimits(max_seconds=0.2),
    )
    assert "render took longer than 0.2 s" in message


def test_loops_over_one_range_are_stopped_too() -> None:
    message = refused(
        "{% set r = range(10000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
        RenderLimits(max_seconds=0.2),
    )
    assert "render took longer than 0.2 s" in message


def test_endless_recursion_is_refused() -> None:
    message = refused("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
    assert "RecursionError" in message


def test_huge_output_is_capped() -> None:
    message = refused("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}")
    assert message == "template: html: output over the limit of 1048576 characters"


@pytest.mark.parametrize(
    "html",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 10**9 * 'x' }}",
        "{{ [0] * 10**9 }}",
        "{{ 2 ** 100000 }}",
        "{% set a = 'x' * 1000000 %}{{ a + a }}",
        "{% set a = 'x' * 1000000 %}{{ a.replace('x', 'yy') }}",
    ],
)
def test_single_step_blowups_are_refused(html: str) -> None:
    message = refused(html)
    assert "over" in message


def test_script_in_data_is_escaped_in_html_and_plain_in_text() -> None:
    out = attempt(
        "<ul>{% for item in recommend(1) %}<li>{{ item.title }}</li>{% endfor %}</ul>",
        subject="{{ recommend(1)[0].title }}",
    )
    assert "<script>" not in out.html
    assert out.html == "<ul><li>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</li></ul>"
    assert out.text == f"- {HOSTILE_TITLE}"
    assert out.subject == HOSTILE_TITLE


def test_markup_in_profile_is_escaped_like_any_string() -> None:
    ctx = context({"name": Markup("<img src=x onerror=alert(1)>")})
    out = render(compile_template(TemplateSpec("t", html="{{ profile.name }}")), ctx)
    assert out.html == "&lt;img src=x onerror=alert(1)&gt;"


def test_safe_filter_is_the_authors_choice_only() -> None:
    # |safe trusts the value; the data's own markup never is trusted unless the author asks
    out = attempt("{{ recommend(1)[0].title }}|{{ '<b>ok</b>'|safe }}")
    assert out.html == "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;|<b>ok</b>"


def test_render_outside_penchant_is_refused() -> None:
    compiled = compile_template(TemplateSpec("t", html="{{ range(3)|list }}"))
    with pytest.raises(jinja2.exceptions.SecurityError):
        compiled.parts["html"].render()
