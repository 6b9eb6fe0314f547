"""Plots for materialisation metadata: small PNGs embedded in Markdown, so the Dagster
UI shows them beside the figures they illustrate. matplotlib is imported lazily."""

import base64
import io


def figure(width: float = 8, height: float = 2.6):
    """A matplotlib Figure drawn off-screen (Agg), without pyplot's global state."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=64)
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
