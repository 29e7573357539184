"""Compiling and rendering personalized templates, and the plain text derived from HTML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest

from penchant.content import (
    RenderContext,
    RenderLimits,
    TemplateSpec,
    compile_template,
    html_to_text,
    render,
)
from penchant.errors import InvalidInput, NotFound

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
ITEMS = [
    {"id": "i1", "title": "Trail shoes", "url": "https://shop.example/i1", "reason": "you hike"},
    {"id": "i2", "title": "Rain jacket", "url": "https://shop.example/i2", "reason": "it rains"},
    {"id": "i3", "title": "Socks", "url": "https://shop.example/i3", "reason": "popular"},
]


class Caller:
    """The caller's side: a recommender and a variant chooser that count their calls."""

    def __init__(self) -> None:
        self.recommend_calls: list[tuple[int, str | None]] = []
        self.slot_calls: list[str] = []

    def recommend(self, k: int, surface: str | None) -> Sequence[Mapping[str, Any]]:
        self.recommend_calls.append((k, surface))
        return ITEMS[:k]

    def choose_variant(self, slot: str) -> Mapping[str, Any]:
        self.slot_calls.append(slot)
        return {"id": f"{slot}-b", "text": "Welcome back", "fields": {"cta": "Shop now"}}

    def context(self, **profile: Any) -> RenderContext:
        return RenderContext(
            profile=profile or {"name": "Ann"},
            recommend=self.recommend,
            choose_variant=self.choose_variant,
            now=NOW,
        )


def run(html: str, caller: Caller | None = None, **spec: Any) -> Any:
    caller = caller or Caller()
    return render(compile_template(TemplateSpec("t", html=html, **spec)), caller.context())


def test_render_known_answer() -> None:
    caller = Caller()
    spec = TemplateSpec(
        name="weekly",
        subject="{{ slot('hero').text }}, {{ profile.name }}",
        html=(
            "<h1>{{ slot('hero').text }}, {{ profile.name }}</h1>"
            "{% for item in recommend(2, surface='email') %}"
            '<p><a href="{{ item.url }}">{{ item.title }}</a> ({{ item.reason }})</p>'
            "{% endfor %}"
            "<p>{{ slot('hero').fields.cta }} {{ now }}</p>"
        ),
    )
    out = render(compile_template(spec), caller.context(name="Ann"))
    assert out.subject == "Welcome back, Ann"
    assert out.html == (
        "<h1>Welcome back, Ann</h1>"
        '<p><a href="https://shop.example/i1">Trail shoes</a> (you hike)</p>'
        '<p><a href="https://shop.example/i2">Rain jacket</a> (it rains)</p>'
        "<p>Shop now 2024-05-06T07:08:09+00:00</p>"
    )
    assert out.text == (
        "Welcome back, Ann\n\n"
        "Trail shoes (https://shop.example/i1) (you hike)\n\n"
        "Rain jacket (https://shop.example/i2) (it rains)\n\n"
        "Shop now 2024-05-06T07:08:09+00:00"
    )
    assert out.slots == {"hero": "hero-b"}
    # one decision per slot and one list per (k, surface), shared by every part
    assert caller.slot_calls == ["hero"]
    assert caller.recommend_calls == [(2, "email")]


def test_slots_record_every_slot_in_first_use_order() -> None:
    out = run("{{ slot('b').id }}{{ slot('a').id }}{{ slot('b').id }}")
    assert out.html == "b-ba-bb-b"
    assert list(out.slots.items()) == [("b", "b-b"), ("a", "a-b")]


def test_recommend_defaults_and_separate_lists() -> None:
    caller = Caller()
    out = run("{{ recommend()|length }} {{ recommend(1)[0].id }} {{ recommend()|length }}", caller)
    assert out.html == "3 i1 3"
    assert caller.recommend_calls == [(3, None), (1, None)]


def test_text_template_is_used_and_not_escaped() -> None:
    caller = Caller()
    spec = TemplateSpec("t", html="<b>{{ profile.name }}</b>", text="Hi {{ profile.name }}!")
    out = render(compile_template(spec), caller.context(name="<Ann & Bob>"))
    assert out.html == "<b>&lt;Ann &amp; Bob&gt;</b>"
    assert out.text == "Hi <Ann & Bob>!"


def test_subject_is_one_line() -> None:
    caller = Caller()
    spec = TemplateSpec("t", html="x", subject="Hi {{ profile.name }}")
    out = render(compile_template(spec), caller.context(name="Ann\r\nBcc: all@example.com"))
    assert out.subject == "Hi Ann Bcc: all@example.com"


def test_no_subject_gives_none() -> None:
    assert run("x").subject is None


def test_now_defaults_to_current_utc_time() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    out = render(compile_template(TemplateSpec("t", html="{{ now }}")), RenderContext(profile={}))
    assert before <= datetime.fromisoformat(out.html) <= datetime.now(UTC)


def test_profile_is_converted_to_plain_data() -> None:
    profile = {
        "visits": np.int64(7),
        "score": np.float32(0.5),
        "tags": ("a", "b"),
        "joined": date(2023, 1, 2),
        "flags": {"vip": True, "none": None},
    }
    ctx = RenderContext(profile=profile, now=NOW)
    html = (
        "{{ profile.visits + 1 }} {{ profile.score }} {{ profile.tags }} {{ profile.joined }} "
        "{{ profile.flags.vip }} {{ profile.flags.none }}"
    )
    out = render(compile_template(TemplateSpec("t", html=html)), ctx)
    assert out.html == "8 0.5 [&#39;a&#39;, &#39;b&#39;] 2023-01-02 True None"


@pytest.mark.parametrize(
    ("profile", "where"),
    [
        ({"tags": {"a", "b"}}, "profile.tags: a set is not plain data"),
        ({"x": [object()]}, "profile.x[0]: a object is not plain data"),
        ({"x": {1: "a"}}, "profile.x: keys must be strings"),
        ({"x": b"raw"}, "profile.x: a bytes is not plain data"),
    ],
)
def test_profile_that_is_not_plain_data(profile: dict[str, Any], where: str) -> None:
    compiled = compile_template(TemplateSpec("t", html="x"))
    with pytest.raises(InvalidInput) as err:
        render(compiled, RenderContext(profile=profile))
    assert err.value.field == "profile"
    assert where in err.value.message


def test_profile_nested_too_deep() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidInput, match="nested deeper"):
        render(compile_template(TemplateSpec("t", html="x")), RenderContext(profile=deep))


def test_syntax_error_names_part_and_line() -> None:
    with pytest.raises(InvalidInput) as err:
        compile_template(TemplateSpec("t", html="<p>\n{% if x %}\n{{ x }\n{% endif %}"))
    assert err.value.field == "html"
    assert err.value.message == "html: line 3: unexpected '}'"
    with pytest.raises(InvalidInput) as err:
        compile_template(TemplateSpec("t", html="ok", text="{% for x in y %}", subject="ok"))
    assert err.value.field == "text"
    assert err.value.message.startswith("text: line 1: Unexpected end of template.")
    with pytest.raises(InvalidInput) as err:
        compile_template(TemplateSpec("t", html="ok", subject="{{ x|no_such_filter }}"))
    assert (err.value.field, err.value.message) == (
        "subject",
        "subject: line 1: No filter named 'no_such_filter'.",
    )


def test_part_size_limit_counts_utf8_bytes() -> None:
    compile_template(TemplateSpec("t", html="a" * 100), max_part_bytes=100)
    with pytest.raises(InvalidInput) as err:
        compile_template(TemplateSpec("t", html="a" * 99 + "\u00e9"), max_part_bytes=100)
    assert err.value.field == "html"
    assert err.value.message == "html: 101 bytes is over the limit of 100"
    with pytest.raises(InvalidInput) as err:
        compile_template(TemplateSpec("t", html="x", subject="a" * 65_537))
    assert err.value.field == "subject"


def test_empty_name_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        compile_template(TemplateSpec(" ", html="x"))
    assert err.value.field == "name"


def test_undefined_name_is_reported_with_its_line() -> None:
    with pytest.raises(InvalidInput) as err:
        run("<p>\n{{ profile.name }}\n{{ profile.nmae }}</p>")
    assert err.value.field == "template"
    assert err.value.message == "template: html: line 3: 'dict object' has no attribute 'nmae'"
    with pytest.raises(InvalidInput, match="line 1: 'usr' is undefined"):
        run("x", text="{{ usr }}")


def test_optional_keys_have_explicit_fallbacks() -> None:
    out = run(
        "{{ profile.get('nick', 'friend') }} {{ profile.nick|default('pal') }} "
        "{% if profile.nick is defined %}x{% else %}y{% endif %}"
    )
    assert out.html == "friend pal y"


def test_random_filter_is_removed() -> None:
    with pytest.raises(InvalidInput, match="No filter named 'random'"):
        compile_template(TemplateSpec("t", html="{{ [1, 2]|random }}"))


def test_caller_function_raising_is_invalid_input() -> None:
    def broken(k: int, surface: str | None) -> Sequence[Mapping[str, Any]]:
        raise RuntimeError("index offline")

    ctx = RenderContext(profile={}, recommend=broken)
    with pytest.raises(InvalidInput) as err:
        render(compile_template(TemplateSpec("t", html="\n{{ recommend() }}")), ctx)
    assert err.value.field == "template"
    assert err.value.message == (
        "template: html: line 2: recommend() failed: RuntimeError: index offline"
    )


def test_caller_domain_error_passes_unchanged() -> None:
    def missing(slot: str) -> Mapping[str, Any]:
        raise NotFound(f"no slot {slot!r}", field="slot")

    ctx = RenderContext(profile={}, choose_variant=missing)
    with pytest.raises(NotFound, match="no slot 'hero'"):
        render(compile_template(TemplateSpec("t", html="{{ slot('hero') }}")), ctx)


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ("{{ recommend() }}", "recommend() is not available"),
        ("{{ slot('x') }}", "slot() is not available"),
    ],
)
def test_missing_functions(html: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        render(compile_template(TemplateSpec("t", html=html)), RenderContext(profile={}))


@pytest.mark.parametrize(
    "html", ["{{ recommend(0) }}", "{{ recommend(101) }}", "{{ recommend('3') }}"]
)
def test_recommend_k_is_checked(html: str) -> None:
    with pytest.raises(InvalidInput, match="k must be an integer from 1 to 100"):
        run(html)


def test_variant_needs_a_string_id() -> None:
    ctx = RenderContext(profile={}, choose_variant=lambda slot: {"text": "no id"})
    with pytest.raises(InvalidInput, match="string id"):
        render(compile_template(TemplateSpec("t", html="{{ slot('x') }}")), ctx)


def test_output_limit_is_exact() -> None:
    compiled = compile_template(
        TemplateSpec("t", html="{% for i in range(profile.n) %}ab{% endfor %}")
    )
    limits = RenderLimits(max_output_chars=10)
    assert render(compiled, RenderContext(profile={"n": 5}), limits=limits).html == "ab" * 5
    with pytest.raises(InvalidInput) as err:
        render(compiled, RenderContext(profile={"n": 6}), limits=limits)
    assert err.value.message == "template: html: output over the limit of 10 characters"


def test_range_limit_is_exact() -> None:
    compiled = compile_template(TemplateSpec("t", html="{{ range(profile.n)|length }}"))
    limits = RenderLimits(max_range=50)
    assert render(compiled, RenderContext(profile={"n": 50}), limits=limits).html == "50"
    with pytest.raises(InvalidInput, match="range\\(\\) over the limit of 50 items"):
        render(compiled, RenderContext(profile={"n": 51}), limits=limits)


def test_range_behaves_like_range() -> None:
    out = run(
        "{{ range(5)|list }} {{ range(1, 10, 3)|list }} {{ range(5)[1:3]|list }} "
        "{{ range(4)|reverse|list }} {{ range(5)[-1] }} {{ 3 in range(5) }}"
        "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }} {% endfor %}"
    )
    assert out.html == ("[0, 1, 2, 3, 4] [1, 4, 7] [1, 2] [3, 2, 1, 0] 4 True1/3 2/3 3/3 ")


def test_jinja_helpers_that_stay() -> None:
    out = run(
        "{% set ns = namespace(total=0) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}"
        "{% endfor %}{{ ns.total }} {% set c = cycler('odd', 'even') %}{{ c.next() }}{{ c.next() }}"
        " {{ dict(a=1).a }}"
    )
    assert out.html == "6 oddeven 1"


def test_compiled_template_renders_the_same_twice() -> None:
    compiled = compile_template(TemplateSpec("t", html="{{ profile.name }} {{ recommend(1) }}"))
    first = render(compiled, Caller().context(name="Ann"))
    second = render(compiled, Caller().context(name="Ann"))
    assert first == second


def test_one_compiled_template_renders_in_many_threads() -> None:
    compiled = compile_template(
        TemplateSpec("t", html="{% for i in range(200) %}{{ profile.name }}{% endfor %}")
    )

    def one(name: str) -> str:
        return render(compiled, RenderContext(profile={"name": name})).html

    names = [f"n{i}" for i in range(16)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(one, names))
    assert outputs == [name * 200 for name in names]


def test_html_to_text_known_answer() -> None:
    html = (
        "<html><head><title>Weekly</title><style>p { color: red }</style></head><body>"
        "<h1>Hello &amp; welcome</h1>"
        "<p>Read   <a href='https://x.example/a?b=1&amp;c=2'>our\n guide</a> now.<br>Then rest.</p>"
        "<ul><li>One</li><li>Two &lt;3</li></ul>"
        "<script>var secret = 1;</script>"
        "<p><a href='https://x.example/same'>https://x.example/same</a> "
        "<a href='#top'>Top</a> <img src='logo.png' alt='Logo'></p>"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
        "<div>caf&eacute; &#8364;5</div>"
        "</body></html>"
    )
    assert html_to_text(html) == (
        "Hello & welcome\n\n"
        "Read our guide (https://x.example/a?b=1&c=2) now.\n"
        "Then rest.\n\n"
        "- One\n"
        "- Two <3\n\n"
        "https://x.example/same Top Logo\n\n"
        "a b\n"
        "c d\n\n"
        "caf\u00e9 \u20ac5"
    )


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("", ""),
        ("plain   words", "plain words"),
        ("<p>a</p>\n\n\n<p>b</p>", "a\n\nb"),
        ("<pre>line 1\nline 2</pre>", "line 1\nline 2"),
        ("<a href='https://x.example'></a>", "https://x.example"),
        ("<a href='javascript:alert(1)'>click</a>", "click"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("<noscript>enable js</noscript>ok", "ok"),
    ],
)
def test_html_to_text_cases(html: str, text: str) -> None:
    assert html_to_text(html) == text
