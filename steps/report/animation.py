"""trajectories.gif: the runs moving along their weight paths on the loss surface, epoch by epoch.

Drawn with matplotlib's ``FuncAnimation`` and written by its ``PillowWriter`` (Pillow comes with
matplotlib: nothing outside PyPI). It shows the first panel of trajectories.png (the best run's
problem) at a size made for a README, with at most :data:`MAX_MOVING` runs moving (the best ones;
the others stay as faint lines), over at most :data:`FRAMES` frames.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from steps.report.compare_figures import Style, fill_surface, panel_view, panels_of, path_epochs, thin
from steps.report.compare_table import Table

FRAMES = 40  # frames of the paths moving; the last is held for HOLD more
HOLD = 10
FPS = 10
MAX_MOVING = 8
GRID = 120
SIZE, DPI = (6.4, 5.0), 80  # 512 x 400 pixels


def trajectories_gif(table: Table, st: list[Style]) -> bytes | None:
    """The GIF's bytes, or None when no run has a 2-weight path."""
    panels, _ = panels_of(table)
    if not panels:
        return None
    view = panel_view(panels[0], table, st, GRID)
    moving = [(i, g, path) for i, g, path in view.runs][:MAX_MOVING]  # (the table's order: best first)
    epochs = {i: path_epochs(table, i, g, path) for i, g, path in moving}
    frames = thin(np.unique(np.concatenate(list(epochs.values()))), FRAMES)
    return _render(view, moving, epochs, frames, st, panels[0].title)


def _render(view, moving, epochs, frames, st: list[Style], title: str) -> bytes:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with rc_context({"text.parse_math": False, "font.size": 9}):
        fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)  # (blitting needs Agg's canvas; a bare Figure has none)
        ax = fig.add_subplot()
        if view.surface is not None and view.surface.levels is not None:
            fill_surface(ax, view.surface, line=0.5, line_alpha=0.5)
        for i, _, path in view.runs:
            ax.plot(path[:, 0], path[:, 1], color=st[i].color, lw=0.8, alpha=0.25)
        if view.objective is not None:
            xy = np.array(view.objective.function.minima)
            ax.plot(xy[:, 0], xy[:, 1], ls="none", marker="*", ms=14, mfc="white", mec="black")
        moved = []  # what changes from frame to frame: drawn over the still background
        for i, _, path in moving:
            ax.plot(*path[0], marker="o", ms=8, mfc="white", mec="black", mew=1.2, zorder=5)
            (trail,) = ax.plot([], [], color=st[i].color, lw=2, zorder=4, label=st[i].label[:40], animated=True)
            (head,) = ax.plot([], [], marker="o", ms=8, color=st[i].color, mec="black", zorder=6, ls="none",
                              animated=True)  # fmt: skip
            moved += [trail, head]
        clock = ax.text(0.98, 0.02, "", transform=ax.transAxes, ha="right", va="bottom", fontsize=10, animated=True,
                        bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})  # fmt: skip
        ax.set_xlim(view.lo[0], view.hi[0])
        ax.set_ylim(view.lo[1], view.hi[1])
        ax.set_xlabel("x" if view.objective else "w₀")
        ax.set_ylabel("y" if view.objective else "w₁")
        ax.legend(handles=moved[::2], loc="upper left", fontsize=7.5, framealpha=0.85)
        ax.set_title(title, fontsize=9.5, loc="left")

        def frame(at: float) -> None:
            for k, (i, _, path) in enumerate(moving):
                j = max(int(np.searchsorted(epochs[i], at, side="right")) - 1, 0)
                moved[2 * k].set_data(path[: j + 1, 0], path[: j + 1, 1])
                moved[2 * k + 1].set_data([path[j, 0]], [path[j, 1]])
            clock.set_text(f"epoch {at:g}")

        writer = blit_writer([*moved, clock], fps=FPS)
        with tempfile.TemporaryDirectory(prefix="gdlab-gif-") as tmp:
            out = Path(tmp) / "trajectories.gif"
            with writer.saving(fig, out, DPI):
                frame(float(frames[-1]))  # every run's colour on screen: the palette of all frames
                writer.learn_palette([st[i].color for i, _, _ in moving])
                for at in [*frames, *[frames[-1]] * HOLD]:
                    frame(float(at))
                    writer.grab_frame()
            return out.read_bytes()


def _writer_class():
    from matplotlib.animation import PillowWriter

    class BlitWriter(PillowWriter):
        """matplotlib's PillowWriter that draws the figure once, then each frame only the ``moved``
        artists over it (a whole redraw a frame cost 0.2 s), each frame on one palette of the first
        without dithering (so the unchanged background compresses to nothing in the GIF)."""

        def __init__(self, moved, **kwargs):
            super().__init__(**kwargs)
            self.moved = moved
            self.background = self.palette = None

        def _now(self):
            from PIL import Image

            canvas = self.fig.canvas
            if self.background is None:
                canvas.draw()
                self.background = canvas.copy_from_bbox(self.fig.bbox)
            canvas.restore_region(self.background)
            for artist in self.moved:
                artist.axes.draw_artist(artist)
            size = canvas.get_width_height()
            return Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")

        def learn_palette(self, colors):
            """The GIF's one palette: the colours of the frame now (every run at its end; 256 less the
            runs' and black and white) and each run's own colour, exactly (a median cut alone merged
            four runs' colours into two)."""
            from matplotlib.colors import to_rgb
            from PIL import Image

            rgb = [round(255 * c) for color in colors for c in to_rgb(color)]
            own = [*rgb, 0, 0, 0, 255, 255, 255]
            background = self._now().quantize(colors=256 - len(own) // 3, method=Image.Quantize.MEDIANCUT)
            palette = background.getpalette()[: 3 * (256 - len(own) // 3)] + own
            self.palette = Image.new("P", (1, 1))
            self.palette.putpalette(palette)

        def finish(self):
            if self._frames:  # (nothing grabbed: the error that stopped it speaks, not an empty list's)
                super().finish()

        def grab_frame(self, **savefig_kwargs):
            from PIL import Image

            self._frames.append(self._now().quantize(palette=self.palette, dither=Image.Dither.NONE))

    return BlitWriter


def blit_writer(moved, **kwargs):
    """A :class:`BlitWriter` (its class is made once matplotlib is imported)."""
    return _writer_class()(moved, **kwargs)
