"""Plots for materialisation metadata: small PNGs embedded in Markdown, so the Dagster
UI shows them beside the figures they illustrate. matplotlib is imported lazily."""

import base64
import io


def figure(width: float = 8, height: float = 2.6, dpi: int = 64):
    """A matplotlib Figure drawn off-screen (Agg), without pyplot's global state."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def palette_png(fig) -> bytes:
    """The figure as a 32-colour palette PNG: a quarter of an RGB PNG's size, which
    matters because every plot rides in the event log."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(colors=32)
    palette = io.BytesIO()
    image.save(palette, format="PNG", optimize=True)
    return palette.getvalue()


def markdown_image(title: str, png: bytes) -> str:
    return f"**{title}**\n\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})\n"


def data_limits(values, pad: float = 0.1, floor: float | None = None) -> tuple[float, float]:
    """Axis limits around the data, padded by `pad` of its span: a 10 % change on a
    240 kW load fills the axis instead of being a hairline above a 0 it never nears.
    A flat series gets 5 % of its level either side; `floor` bounds the low end (0 for
    a load that cannot go negative)."""
    import math

    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return (0.0, 1.0)
    low, high = min(finite), max(finite)
    margin = pad * (high - low) if high > low else max(abs(high) * 0.05, 1.0)
    low, high = low - margin, high + margin
    return (max(low, floor) if floor is not None else low, high)


def legend_outside(axes, fontsize: float = 9) -> None:
    """The legend to the right of the plot, clear of the lines, one entry a line."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=fontsize, frameon=False, borderaxespad=0.0)
