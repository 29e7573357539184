"""Dynamic content: sandboxed personalized templates and offline copy generation."""

from penchant.content.generate import GenerationConfig, propose_copy
from penchant.content.templates import (
    CompiledTemplate,
    RenderContext,
    Rendered,
    RenderLimits,
    TemplateSpec,
    compile_template,
    render,
)
from penchant.content.text import html_to_text

__all__ = [
    "CompiledTemplate",
    "GenerationConfig",
    "RenderContext",
    "RenderLimits",
    "Rendered",
    "TemplateSpec",
    "compile_template",
    "html_to_text",
    "propose_copy",
    "render",
]
