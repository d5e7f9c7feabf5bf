"""Widgets: the image view (zoom, pan, overlays, mouse clicks) and the patch grid.

Pixels go through textual-image, which picks Sixel or Kitty graphics where the terminal
supports them and half-block characters otherwise (tmux, plain xterm, tests); Kitty graphics
only where the terminal shows them (`terminal.graphics_renderable`: not kitty before 0.28)."""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region
from textual.strip import Strip
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static
from textual_image.renderable import HalfcellImage as HalfcellRenderable
from textual_image.renderable import UnicodeImage as UnicodeRenderable
from textual_image.widget import Image as TerminalImage, get_cell_size

from .render import Overlay, Viewport, mosaic, render_view
from .terminal import graphics_renderable

ActiveRenderable = graphics_renderable()  # asked once, before Textual reads the keyboard

MAX_PIXELS = 1_600_000  # cap on what one view renders (Sixel terminals with tiny cells)


# pixels per cell of the character renderers: half blocks (two pixels, one above the other),
# and the grey-shade characters textual-image falls back to off a terminal (one pixel)
CHARACTER_CELL_PIXELS = {HalfcellRenderable: (1, 2), UnicodeRenderable: (1, 1)}


def pixels_per_cell(renderable: type = ActiveRenderable) -> tuple[int, int]:
    """(width, height) px of one terminal cell as the image renderer in use shows it: what
    textual-image chose for this terminal (Sixel, Kitty, half blocks or characters). Views are
    drawn at exactly this resolution, so a one-pixel line is one visible pixel."""
    if renderable in CHARACTER_CELL_PIXELS:
        return CHARACTER_CELL_PIXELS[renderable]
    size = get_cell_size()
    return max(1, int(size.width)), max(1, int(size.height))


def view_pixels(columns: int, rows: int, renderable: type = ActiveRenderable) -> tuple[int, int]:
    """(width, height) px to draw a view of `columns` x `rows` cells at: what the renderer
    shows there, one drawn pixel per shown pixel (less when that exceeds MAX_PIXELS)."""
    cw, ch = pixels_per_cell(renderable)
    width, height = columns * cw, rows * ch
    shrink = min(1.0, (MAX_PIXELS / (width * height)) ** 0.5)
    return max(1, int(width * shrink)), max(1, int(height * shrink))


class HalfBlocks(Widget):
    """An image as half blocks, as textual-image's half cells draw it ("▀": the upper pixel
    the character's colour, the lower its background; scaled to the widget), but a new image
    repaints only the cells that changed. Textual sends a repainted widget whole: over SSH a
    box moved on the image of a 160x50 screen cost all its cells (about 100 kB at 24-bit
    colour); now it costs the cells the box crosses (`benchmarks/bench_tui_bytes.py`)."""

    def __init__(self, image: Image.Image, **kwargs):
        super().__init__(**kwargs)
        self._image = image
        self._pixels: np.ndarray | None = None  # (2 * rows, columns, 3) uint8: what the terminal shows
        self._strips: dict[int, Strip] = {}

    @property
    def image(self) -> Image.Image:
        return self._image

    @image.setter
    def image(self, image: Image.Image) -> None:
        self._image = image
        self._update()

    def on_resize(self, event: events.Resize) -> None:
        self._update()

    def _update(self) -> None:
        """Scale the image to the widget and repaint the cells whose pixels changed."""
        columns, rows = self.size.width, self.size.height
        old = self._pixels
        if not columns or not rows:
            self._pixels = None
            return
        image = self._image.convert("RGB")
        if image.size != (columns, 2 * rows):
            image = image.resize((columns, 2 * rows))  # as textual-image scales
        self._pixels = np.asarray(image)
        if old is None or old.shape != self._pixels.shape:
            self._strips.clear()
            self.refresh()
            return
        changed = (old != self._pixels).any(axis=2)
        cells = changed[0::2] | changed[1::2]
        for row in np.flatnonzero(cells.any(axis=1)).tolist():
            self._strips.pop(row, None)
            columns_changed = np.flatnonzero(cells[row])
            self.refresh(Region(int(columns_changed[0]), row, int(columns_changed[-1] - columns_changed[0] + 1), 1))

    def render_line(self, y: int) -> Strip:
        pixels = self._pixels
        if pixels is None or y >= pixels.shape[0] // 2:
            return Strip.blank(self.size.width)
        if y not in self._strips:
            upper, lower = pixels[2 * y].tolist(), pixels[2 * y + 1].tolist()
            segments = [Segment("▀", Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
                        for top, bottom in zip(upper, lower)]
            self._strips[y] = Strip(segments, len(segments)).simplify()
        return self._strips[y]


def retitle(widget: Widget, title: str) -> None:
    """Set the border title when it changes: setting it repaints the whole widget, pixels and all."""
    if (widget.border_title or "") != title:
        widget.border_title = title


# half blocks where textual-image would draw them (tmux, plain xterm), its own widget for Sixel and Kitty
PIXELS_WIDGET = HalfBlocks if ActiveRenderable is HalfcellRenderable else TerminalImage


def show_pixels(widget: Widget, image: Image.Image) -> None:
    """Put `image` in the widget's one terminal image (made on first use)."""
    pixels = widget.query(".pixels")
    if pixels:
        pixels.first().image = image
    else:
        widget.remove_children()
        widget.mount(PIXELS_WIDGET(image, classes="pixels"))


class ImageView(Widget):
    """One image, the part the viewport selects, with boxes drawn in; a click posts the
    image coordinates clicked, a drag the box drawn."""

    DEFAULT_CSS = """
    ImageView { height: 1fr; width: 1fr; layers: image hints; }
    ImageView > .pixels { width: 100%; height: 100%; }
    ImageView > .empty { width: 100%; height: 100%; content-align: center middle; color: $text-muted; }
    ImageView > .hint { layer: hints; position: absolute; width: auto; height: 1; background: $warning;
                        color: $text; text-style: bold; }
    """

    class Clicked(Message):
        def __init__(self, y: float, x: float):
            super().__init__()
            self.y, self.x = y, x

    class Dragged(Message):
        """A box (x0, y0, x1, y1) in image px drawn with the mouse."""

        def __init__(self, box: tuple[float, float, float, float]):
            super().__init__()
            self.box = box

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rgb: np.ndarray | None = None
        self.factor = 1.0
        self.detail = None
        self.viewport: Viewport | None = None
        self.overlays: list[Overlay] = []
        self.rendered: Image.Image | None = None

    def compose(self):
        yield Static("no image", classes="empty")

    @property
    def aspect(self) -> float:
        """Width / height of the view in pixels."""
        cw, ch = pixels_per_cell()
        cols, rows = max(1, self.size.width), max(1, self.size.height)
        return cols * cw / (rows * ch)

    def show(self, rgb: np.ndarray, factor: float, viewport: Viewport, overlays: list[Overlay], *, detail=None) -> None:
        """`detail`: for a slide, (region, view px per image px) -> a sharper `Detail` of that
        region, or None (`DisplayImages.detail`)."""
        self.rgb, self.factor, self.viewport, self.overlays = rgb, factor, viewport, list(overlays)
        self.detail = detail
        self._draw()

    def clear(self, message: str) -> None:
        self.rgb = None
        self.rendered = None
        self.remove_children()
        self.mount(Static(message, classes="empty"))

    def on_resize(self, event: events.Resize) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.rgb is None or self.viewport is None or not self.size.width or not self.size.height:
            return
        target = view_pixels(self.size.width, self.size.height)
        region = self.viewport.region(self.aspect)
        piece = self.detail(region, target[0] / (region[2] - region[0])) if self.detail is not None else None
        if piece is not None:  # a slide zoomed in: the part in view, read sharper than its overview
            self.rendered = render_view(piece.rgb, piece.factor, region, target, self.overlays, origin=piece.origin)
        else:
            self.rendered = render_view(self.rgb, self.factor, region, target, self.overlays)
        show_pixels(self, self.rendered)

    def show_hints(self, hints: list[tuple[str, float, float]]) -> None:
        """Label places of the image, each (label, y, x) in image px, on the cells showing them."""
        self.clear_hints()
        if self.viewport is None or not self.size.width or not self.size.height:
            return
        for label, y, x in hints:
            cell = self.hint_cell(y, x, len(label))
            if cell is not None:
                marker = Static(label, classes="hint")
                marker.styles.offset = cell
                self.mount(marker)

    def hint_cell(self, y: float, x: float, width: int = 1) -> tuple[int, int] | None:
        """The cell (column, row) where `show_hints` draws a label `width` cells wide for the image
        place (y, x) in px: centred on it, kept inside the view; None above or below the view."""
        if self.viewport is None or not self.size.width or not self.size.height:
            return None
        x0, y0, x1, y1 = self.viewport.region(self.aspect)
        column = int((x - x0) / (x1 - x0) * self.size.width) - width // 2
        row = int((y - y0) / (y1 - y0) * self.size.height)
        return (min(max(0, column), self.size.width - width), row) if 0 <= row < self.size.height else None

    def clear_hints(self) -> None:
        self.query(".hint").remove()

    def image_point(self, x: int, y: int) -> tuple[float, float]:
        """Image coordinates (y, x) of the middle of the cell at widget offset (x, y)."""
        x0, y0, x1, y1 = self.viewport.region(self.aspect)
        return y0 + (y + 0.5) / self.size.height * (y1 - y0), x0 + (x + 0.5) / self.size.width * (x1 - x0)

    def _content_offset(self, event: events.MouseEvent) -> tuple[int, int] | None:
        offset = event.get_content_offset_capture(self)
        if offset is None:
            return None
        return min(max(0, offset.x), self.size.width - 1), min(max(0, offset.y), self.size.height - 1)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        if self.viewport is not None and self.size.width and event.get_content_offset(self) is not None:
            self._pressed = self._content_offset(event)
            self.capture_mouse()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        pressed, self._pressed = getattr(self, "_pressed", None), None
        self.release_mouse()
        released = self._content_offset(event)
        if pressed is None or released is None or self.viewport is None:
            return
        if abs(released[0] - pressed[0]) + abs(released[1] - pressed[1]) <= 1:
            self.post_message(self.Clicked(*self.image_point(*released)))
            return
        (ya, xa), (yb, xb) = self.image_point(*pressed), self.image_point(*released)
        self.post_message(self.Dragged((min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))))


class FocusView(ImageView):
    """The object being judged, as large as the view allows, with its box and some context
    around it (half the box's size on each side, less where the zoom range ends)."""

    DEFAULT_CSS = """
    FocusView { height: 1fr; width: 1fr; border: round $accent; }
    FocusView > .pixels { width: 100%; height: 100%; }
    FocusView > .empty { width: 100%; height: 100%; content-align: center middle; color: $text-muted; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.box: tuple[float, float, float, float] | None = None

    def show_object(self, rgb: np.ndarray, factor: float, image_size: tuple[int, int],
                    box: tuple[float, float, float, float], overlays: list[Overlay], *, title: str = "") -> None:
        """image_size: (height, width) in image px; box: (x0, y0, x1, y1) of the object."""
        self.box = box
        retitle(self, title)
        self.show(rgb, factor, Viewport(*image_size), overlays)

    def _draw(self) -> None:
        if self.viewport is not None and self.box is not None and self.size.width and self.size.height:
            self.viewport.fit(self.box, self.aspect, context=0.5)
        super()._draw()


class PatchGrid(Widget, can_focus=True):
    """Patches as a grid of tiles, one page at a time; arrows move the focus, which posts
    `Moved`. The screen owns the items: `tile(i)` gives a PIL tile, `flagged(i)` its mark."""

    DEFAULT_CSS = """
    PatchGrid { height: 1fr; width: 1fr; layers: tiles labels; border: tall $background; }  /* the same size focused */
    PatchGrid:focus { border: tall $accent; }
    PatchGrid > .pixels { width: 100%; height: 100%; }
    PatchGrid > .empty { color: $text-muted; }
    PatchGrid > .hint { layer: labels; position: absolute; width: auto; height: 1; background: $warning;
                        color: $text; text-style: bold; }
    """
    BINDINGS = [
        Binding("left", "move(-1, 0)", "grid: previous patch", show=False), Binding("right", "move(1, 0)", "grid: next patch", show=False),
        Binding("up", "move(0, -1)", "grid: patch above", show=False), Binding("down", "move(0, 1)", "grid: patch below", show=False),
        Binding("pageup", "page(-1)", "grid: previous page", show=False), Binding("pagedown", "page(1)", "grid: next page", show=False),
        Binding("home", "jump(0)", "grid: first patch", show=False),
    ]
    TILE_CELLS = (16, 8)  # a square tile in half-block cells (1 x 2 px each)

    class Moved(Message):
        def __init__(self, index: int):
            super().__init__()
            self.index = index

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.count = 0
        self.focus_index = 0
        self.tile: Callable[[int], Image.Image] | None = None
        self.flagged: Callable[[int], bool] = lambda i: False
        self.rendered: Image.Image | None = None

    def compose(self):
        yield Static("nothing to show", classes="empty")

    def set_items(self, count: int, tile: Callable[[int], Image.Image], flagged: Callable[[int], bool], *,
                  focus: int | None = None) -> None:
        self.count, self.tile, self.flagged = count, tile, flagged
        if focus is not None:
            self.focus_index = focus
        if count:  # none yet (loading): the focus waits for the items
            self.focus_index = min(max(0, self.focus_index), count - 1)
        self._draw()

    @property
    def columns(self) -> int:
        return max(1, self.size.width // self.TILE_CELLS[0])

    @property
    def rows(self) -> int:
        return max(1, self.size.height // self.TILE_CELLS[1])

    def page_start(self) -> int:
        per_page = self.columns * self.rows
        return (self.focus_index // per_page) * per_page

    def on_resize(self, event: events.Resize) -> None:
        self._draw()

    def page_items(self) -> list[int]:
        """The item indices on the page shown."""
        start = self.page_start()
        return list(range(start, min(self.count, start + self.columns * self.rows)))

    def show_labels(self, labels: dict[str, int]) -> None:
        """A label on the top-left corner of each item's tile (label -> item index on this page)."""
        self.clear_labels()
        start = self.page_start()
        for label, index in labels.items():
            position = index - start
            marker = Static(label, classes="hint")
            marker.styles.offset = ((position % self.columns) * self.TILE_CELLS[0], (position // self.columns) * self.TILE_CELLS[1])
            self.mount(marker)

    def clear_labels(self) -> None:
        self.query(".hint").remove()

    def next_page(self) -> bool:
        """Show the next page (the focus on its first item); False on the last page."""
        start = self.page_start() + self.columns * self.rows
        if start >= self.count:
            return False
        self._set_focus_index(start)
        return True

    def _draw(self) -> None:
        if not self.size.width or not self.size.height:
            return
        if not self.count or self.tile is None:
            self.rendered = None
            retitle(self, "")
            self.remove_children()
            self.mount(Static("nothing to show", classes="empty"))
            return
        cw, ch = pixels_per_cell()
        side = min(self.TILE_CELLS[0] * cw, self.TILE_CELLS[1] * ch) - 1
        start = self.page_start()
        indices = list(range(start, min(self.count, start + self.columns * self.rows)))
        retitle(self, f"{start + 1}-{indices[-1] + 1} of {self.count}")  # shown with the focus's border
        tiles = [self.tile(i) for i in indices]
        tiles = [t.resize((side, side)) if t.size != (side, side) else t for t in tiles]
        self.rendered = mosaic(tiles, columns=self.columns, rows=self.rows, tile=side,
                               flagged=[self.flagged(i) for i in indices], focus=self.focus_index - start)
        show_pixels(self, self.rendered)

    def _set_focus_index(self, index: int) -> None:
        if not self.count:
            return
        index = min(max(0, index), self.count - 1)
        if index != self.focus_index:
            self.focus_index = index
            self._draw()
            self.post_message(self.Moved(index))

    def action_move(self, dx: int, dy: int) -> None:
        self._set_focus_index(self.focus_index + dx + dy * self.columns)

    def action_page(self, direction: int) -> None:
        self._set_focus_index(self.focus_index + direction * self.columns * self.rows)

    def action_jump(self, index: int) -> None:
        self._set_focus_index(index)

    def on_click(self, event: events.Click) -> None:
        column, row = event.x // self.TILE_CELLS[0], event.y // self.TILE_CELLS[1]
        if column < self.columns:
            self._set_focus_index(self.page_start() + row * self.columns + column)
