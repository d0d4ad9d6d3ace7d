"""Draw the WaveNet-for-images architecture figure (images/network.png).

The figure is drawn with Pillow and numpy only (no matplotlib).  Everything
is laid out on a 1200x800 logical canvas, rendered at 2x and downsampled
for anti-aliasing.  The output is deterministic.

Panels
  1. an image flattened in raster order into a sequence x_0 .. x_{T-1},
     shifted right by one with a START token (causality),
  2. the input stem: 8-bit levels -> one-hot(256) -> initial causal conv,
  3. one residual block in detail (dilated causal conv, gated tanh/sigmoid
     unit, 1x1 residual and skip convs), repeated N times,
  4. the output head: sum of skips -> ReLU -> 1x1 -> ReLU -> 1x1 -> softmax,
  5. an inset showing how dilations 1, 2, 4, 8 grow the receptive field.

Usage:  python images/draw_network.py   (writes images/network.png)
"""

import contextlib
import glob
import os
import re

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 800
SS = 2  # supersampling factor

# Palette -------------------------------------------------------------------
WHITE = (255, 255, 255)
INK = (17, 24, 39)
MUTED = (100, 110, 125)
LIGHT = (205, 210, 218)
BLUE = (37, 99, 235)
BLUE_BG = (219, 234, 254)
ORANGE = (194, 65, 12)
ORANGE_BG = (255, 237, 213)
GREEN = (21, 128, 61)
GREEN_BG = (220, 252, 231)
PURPLE = (109, 40, 217)
PURPLE_BG = (237, 233, 254)
RED = (220, 38, 38)
TEAL = (13, 148, 136)

# 8x8 stand-in for a 28x28 digit (a "2"), grey levels 0..255 (255 = ink).
DIGIT = np.array([
    [0, 0, 60, 150, 170, 90, 0, 0],
    [0, 90, 230, 140, 160, 240, 40, 0],
    [0, 30, 40, 0, 10, 240, 80, 0],
    [0, 0, 0, 0, 120, 220, 20, 0],
    [0, 0, 0, 110, 240, 60, 0, 0],
    [0, 0, 120, 230, 60, 0, 0, 0],
    [0, 110, 250, 200, 180, 190, 170, 20],
    [0, 40, 110, 120, 120, 110, 90, 0],
], dtype=np.float64)


# Fonts ---------------------------------------------------------------------
_FONT_CACHE = {}


def _find_font_file(bold):
    """Return a usable truetype font path (or name), or None."""
    names = (["DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf"] if bold
             else ["DejaVuSans.ttf", "LiberationSans-Regular.ttf"])
    for name in names:
        try:
            ImageFont.truetype(name, 10)
            return name
        except OSError:
            pass
        hits = sorted(glob.glob(os.path.join("/usr/share/fonts", "**", name),
                                recursive=True))
        if hits:
            return hits[0]
    return None


def font(size, bold=False):
    """Font of the given logical size (scaled for supersampling)."""
    key = (size, bold)
    if key not in _FONT_CACHE:
        path = _find_font_file(bold) or _find_font_file(False)
        px = int(round(size * SS))
        if path is not None:
            _FONT_CACHE[key] = ImageFont.truetype(path, px)
        else:
            _FONT_CACHE[key] = ImageFont.load_default(size=px)
    return _FONT_CACHE[key]


# Drawing helpers -------------------------------------------------------------
_SCRIPT = re.compile(r"([_^])\{([^}]*)\}")


def _segments(text):
    """Split 'x_{t-1} 2^{L}' into [(text, kind), ...], kind in '', '_', '^'."""
    out, pos = [], 0
    for m in _SCRIPT.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], ""))
        out.append((m.group(2), m.group(1)))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], ""))
    return out


class Figure:
    """A thin wrapper around ImageDraw working in logical coordinates."""

    def __init__(self, width=WIDTH, height=HEIGHT):
        self.img = Image.new("RGB", (width * SS, height * SS), WHITE)
        self.d = ImageDraw.Draw(self.img)

    @contextlib.contextmanager
    def translucent(self, alpha):
        """Draw the body of the `with` block at the given opacity (0..1)."""
        layer = Image.new("RGBA", self.img.size, (0, 0, 0, 0))
        saved, self.d = self.d, ImageDraw.Draw(layer)
        try:
            yield
        finally:
            self.d = saved
            a = layer.getchannel("A").point(lambda v: int(v * alpha))
            layer.putalpha(a)
            base = self.img.convert("RGBA")
            self.img = Image.alpha_composite(base, layer).convert("RGB")
            self.d = ImageDraw.Draw(self.img)

    @staticmethod
    def _s(v):
        return int(round(v * SS))

    def _pts(self, pts):
        return [(self._s(x), self._s(y)) for x, y in pts]

    # text ----------------------------------------------------------------
    def text_width(self, text, size=14, bold=False):
        w = 0.0
        for seg, kind in _segments(text):
            f = font(size * 0.72 if kind else size, bold)
            w += f.getlength(seg) / SS
        return w

    def text(self, x, y, text, size=14, bold=False, fill=INK, anchor="mm"):
        """Draw text with _{sub}/^{super} scripts; anchor l, m or r (+ m)."""
        w = self.text_width(text, size, bold)
        f = font(size, bold)
        box = f.getbbox("Hx", anchor="ls")
        cap = -box[1] / SS
        if anchor[0] == "l":
            x0 = x
        elif anchor[0] == "r":
            x0 = x - w
        else:
            x0 = x - w / 2
        base = y + cap / 2
        for seg, kind in _segments(text):
            fs = size * 0.72 if kind else size
            ff = font(fs, bold)
            dy = {"": 0.0, "_": 0.3 * size, "^": -0.4 * size}[kind]
            self.d.text((self._s(x0), self._s(base + dy)), seg, font=ff,
                        fill=fill, anchor="ls")
            x0 += ff.getlength(seg) / SS

    # shapes --------------------------------------------------------------
    def line(self, pts, fill=INK, width=2):
        self.d.line(self._pts(pts), fill=fill, width=self._s(width),
                    joint="curve")

    def dashed(self, pts, fill=MUTED, width=1.5, dash=6, gap=4):
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            length = float(np.hypot(x1 - x0, y1 - y0))
            if length == 0:
                continue
            ux, uy = (x1 - x0) / length, (y1 - y0) / length
            t = 0.0
            while t < length:
                t1 = min(t + dash, length)
                self.line([(x0 + ux * t, y0 + uy * t),
                           (x0 + ux * t1, y0 + uy * t1)], fill, width)
                t += dash + gap

    def arrow(self, pts, fill=INK, width=2, head=9, dashed=False):
        """Polyline with a filled arrowhead at its last point."""
        (xa, ya), (xb, yb) = pts[-2], pts[-1]
        length = float(np.hypot(xb - xa, yb - ya))
        ux, uy = (xb - xa) / length, (yb - ya) / length
        tip_base = (xb - ux * head, yb - uy * head)
        body = list(pts[:-1]) + [tip_base]
        if dashed:
            self.dashed(body, fill, width)
        else:
            self.line(body, fill, width)
        px, py = -uy, ux
        tri = [(xb, yb),
               (tip_base[0] + px * head * 0.5, tip_base[1] + py * head * 0.5),
               (tip_base[0] - px * head * 0.5, tip_base[1] - py * head * 0.5)]
        self.d.polygon(self._pts(tri), fill=fill)

    def rect(self, x0, y0, x1, y1, fill=None, outline=INK, width=1.5,
             radius=7):
        self.d.rounded_rectangle([self._s(x0), self._s(y0), self._s(x1),
                                  self._s(y1)], radius=self._s(radius),
                                 fill=fill, outline=outline,
                                 width=self._s(width))

    def box(self, cx, cy, w, h, lines, fill, outline, size=14, bold=False):
        """Rounded box centred at (cx, cy) with one or more text lines."""
        self.rect(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, fill,
                  outline, width=1.8)
        if isinstance(lines, str):
            lines = [lines]
        step = size * 1.35
        y = cy - step * (len(lines) - 1) / 2
        for i, ln in enumerate(lines):
            self.text(cx, y + i * step, ln, size=size if i == 0 else size - 2,
                      bold=bold and i == 0,
                      fill=INK if i == 0 else MUTED)

    def dashed_rect(self, x0, y0, x1, y1, fill=MUTED):
        self.dashed([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)],
                    fill=fill, width=1.5, dash=8, gap=5)

    def circle(self, cx, cy, r, fill=WHITE, outline=INK, width=1.8):
        self.d.ellipse([self._s(cx - r), self._s(cy - r), self._s(cx + r),
                        self._s(cy + r)], fill=fill, outline=outline,
                       width=self._s(width))

    def op(self, cx, cy, kind, r=11, color=INK):
        """Operator node: 'add' (circle-plus) or 'mul' (circle-dot)."""
        self.circle(cx, cy, r, outline=color)
        if kind == "add":
            k = r * 0.6
            self.line([(cx - k, cy), (cx + k, cy)], color, 2)
            self.line([(cx, cy - k), (cx, cy + k)], color, 2)
        else:
            self.circle(cx, cy, r * 0.25, fill=color, outline=color)

    def cell(self, x0, y0, size, level, outline=MUTED):
        """A square whose grey value encodes a pixel level (255 = dark)."""
        g = int(round(255 - 0.85 * level))
        self.d.rectangle([self._s(x0), self._s(y0), self._s(x0 + size),
                          self._s(y0 + size)], fill=(g, g, g),
                         outline=outline, width=self._s(1))

    def panel_title(self, x, y, number, title):
        self.circle(x + 10, y, 10, fill=INK, outline=INK)
        self.text(x + 10, y, str(number), size=12, bold=True, fill=WHITE)
        self.text(x + 27, y, title, size=15, bold=True, anchor="lm")

    def save(self, path):
        out = self.img.resize((self.img.width // SS, self.img.height // SS),
                              Image.LANCZOS)
        out.save(path, optimize=True)


# Panels ----------------------------------------------------------------------
def draw_sequence_panel(fig):
    """Panel 1: image -> raster-order sequence -> shifted input."""
    fig.panel_title(20, 68, 1, "Image to sequence")

    cell, gx, gy = 21, 40, 92
    for r in range(8):
        for c in range(8):
            fig.cell(gx + c * cell, gy + r * cell, cell, DIGIT[r, c],
                     outline=LIGHT)
    fig.rect(gx, gy, gx + 8 * cell, gy + 8 * cell, outline=MUTED,
             width=1.2, radius=0)
    # raster order: left-to-right along each row, then back to the next row
    with fig.translucent(0.75):
        for r in range(8):
            yc = gy + (r + 0.5) * cell
            fig.arrow([(gx + 4, yc), (gx + 8 * cell - 4, yc)], fill=RED,
                      width=1.3, head=6)
            if r < 7:
                fig.dashed([(gx + 8 * cell - 6, yc + 3),
                            (gx + 6, yc + cell - 3)], fill=RED,
                           width=0.8, dash=3, gap=3)
    tx = gx + 8 * cell + 14
    fig.text(tx, gy + 18, "H x W image", size=13, bold=True, anchor="lm")
    fig.text(tx, gy + 38, "(28 x 28 digit,", size=12, fill=MUTED,
             anchor="lm")
    fig.text(tx, gy + 55, "8 x 8 shown)", size=12, fill=MUTED, anchor="lm")
    fig.line([(tx, gy + 86), (tx + 16, gy + 86)], RED, 1.6)
    fig.text(tx + 22, gy + 86, "raster order", size=12, fill=RED,
             anchor="lm")
    fig.text(tx + 22, gy + 102, "(row by row)", size=12, fill=RED,
             anchor="lm")

    # flatten arrow
    fig.arrow([(gx + 4 * cell, gy + 8 * cell + 6), (gx + 4 * cell, 300)],
              fill=INK, width=1.8)
    fig.text(gx + 4 * cell + 10, 283, "flatten, T = H·W = 784",
             size=12, anchor="lm", fill=MUTED)

    # sequence of levels (targets) and shifted input
    seq = DIGIT.reshape(-1)
    order = [8 + 1, 8 + 2, 8 + 3, 8 + 4, 8 + 5]  # a few inked pixels
    cw, x0 = 34, 40
    ys, yi = 318, 392
    tgt = ["x_{0}", "x_{1}", "x_{2}", "x_{3}", "x_{4}", None, "x_{T-1}"]
    inp = ["START", "x_{0}", "x_{1}", "x_{2}", "x_{3}", None, "x_{T-2}"]
    for i, (lt, li) in enumerate(zip(tgt, inp)):
        cx = x0 + i * cw
        if lt is None:
            fig.text(cx + cw / 2, ys + cw / 2, "...", size=14, fill=MUTED)
            fig.text(cx + cw / 2, yi + cw / 2, "...", size=14, fill=MUTED)
            continue
        lvl_t = seq[order[i]] if i < len(order) else 60
        fig.cell(cx, ys, cw, lvl_t * 0.45)
        fig.text(cx + cw / 2, ys + cw / 2, lt, size=12)
        if li == "START":
            fig.d.rectangle([fig._s(cx), fig._s(yi), fig._s(cx + cw),
                             fig._s(yi + cw)], fill=(254, 243, 199),
                            outline=(217, 119, 6), width=fig._s(1.2))
            fig.text(cx + cw / 2, yi + cw / 2, "S", size=13, bold=True,
                     fill=(180, 83, 9))
        else:
            lvl_i = seq[order[i - 1]] if i - 1 < len(order) else 60
            fig.cell(cx, yi, cw, lvl_i * 0.45)
            fig.text(cx + cw / 2, yi + cw / 2, li, size=12)
    # shift arrows: target x_i moves one place right in the input row
    for i in range(4):
        fig.arrow([(x0 + i * cw + cw / 2, ys + cw + 2),
                   (x0 + (i + 1) * cw + cw / 2 - 2, yi - 2)],
                  fill=TEAL, width=1.3, head=6)
    fig.text(x0 + 7 * cw + 8, ys + cw / 2, "targets", size=12,
             anchor="lm", fill=MUTED)
    fig.text(x0 + 7 * cw + 8, yi + cw / 2, "input", size=12,
             anchor="lm", fill=MUTED)
    feed_x = x0 + 7 * cw + 14 + fig.text_width("input", 12)
    fig.text(x0, yi + cw + 18, "input = targets shifted right by one,",
             size=12, anchor="lm")
    fig.text(x0, yi + cw + 35, "S = START token: output t sees only",
             size=12, anchor="lm")
    fig.text(x0, yi + cw + 52, "pixels < t and predicts x_{t}",
             size=12, anchor="lm")
    # connector to the stem (enters the input box from the left)
    return (feed_x, yi + cw / 2)


def draw_stem(fig, cx, feed):
    """Panel 2: one-hot + initial causal conv.  Returns bottom y."""
    fig.panel_title(cx - 215, 68, 2, "Input stem")
    w = 300
    b1, b2, b3 = 112, 160, 216
    fig.box(cx, b1, w, 32, "8-bit pixel levels  (0 ... 255)", BLUE_BG,
            BLUE, size=13)
    fig.box(cx, b2, w, 32, "one-hot encoding  (256 channels)", BLUE_BG,
            BLUE, size=13)
    fig.box(cx, b3, w, 46, ["initial causal conv", "per-tap embedding lookups, summed"],
            ORANGE_BG, ORANGE, size=13)
    fig.arrow([(cx, b1 + 16), (cx, b2 - 16)], width=1.8, head=8)
    fig.arrow([(cx, b2 + 16), (cx, b3 - 23)], width=1.8, head=8)
    fx, fy = feed
    fig.arrow([(fx, fy), (345, fy), (345, b1), (cx - w / 2, b1)],
              fill=INK, width=1.8, head=8)
    return b3 + 23


def draw_dilated_taps(fig, x0, y0, w):
    """Miniature dilated causal conv (k=2, dilation d) inside a box."""
    n, d, t = 9, 3, 8
    sp = w / (n - 1)
    yin, yout = y0, y0 + 20
    for i in range(n):
        on = i in (t, t - d)
        fig.circle(x0 + i * sp, yin, 3.2, fill=ORANGE if on else LIGHT,
                   outline=ORANGE if on else LIGHT, width=1)
    xo = x0 + t * sp
    for i in range(n - 1):
        fig.circle(x0 + i * sp, yout, 2.6, fill=LIGHT, outline=LIGHT,
                   width=1)
    for i in (t, t - d):
        fig.line([(x0 + i * sp, yin + 3), (xo, yout - 3)], ORANGE, 1.4)
    fig.circle(xo, yout, 3.6, fill=ORANGE, outline=ORANGE, width=1)
    fig.text(x0 + (t - d) * sp, yin - 10, "t-d", size=10, fill=ORANGE)
    fig.text(x0 + t * sp, yin - 10, "t", size=10, fill=ORANGE)


def draw_residual_block(fig, cx, top):
    """Panel 3: one residual block in detail.  Returns (skip_xy, bottom)."""
    x0, x1, y0, y1 = cx - 220, cx + 215, top + 26, 700
    fig.dashed_rect(x0, y0, x1, y1)
    fig.panel_title(x0 + 8, y0 + 18, 3, "Residual block")
    fig.text(x1 - 10, y0 + 18, "x N", size=22, bold=True, fill=PURPLE,
             anchor="rm")

    # residual stream in
    fig.line([(cx, top), (cx, y0 + 40)], INK, 2)
    fig.text(cx + 8, top + 14, "h", size=13, bold=True, anchor="lm")
    split_y = y0 + 40
    fig.circle(cx, split_y, 3.5, fill=INK)
    conv_y = split_y + 58
    fig.arrow([(cx, split_y), (cx, conv_y - 34)], width=1.8, head=8)
    fig.rect(cx - 150, conv_y - 34, cx + 150, conv_y + 34, ORANGE_BG,
             ORANGE, width=1.8)
    fig.text(cx, conv_y - 20, "causal dilated conv (k = 2, dilation d)",
             size=13)
    draw_dilated_taps(fig, cx - 100, conv_y + 3, 200)
    fig.text(x1 - 10, y0 + 44, "d = 1, 2, 4, ..., 2^{L-1}", size=12,
             fill=PURPLE, anchor="rm")

    # split into filter / gate
    fy = conv_y + 80
    lx, rx = cx - 70, cx + 70
    fig.text(cx, conv_y + 48, "split channels", size=11, fill=MUTED)
    fig.arrow([(cx, conv_y + 34), (cx, conv_y + 40), (lx, conv_y + 40),
               (lx, fy - 15)], width=1.6, head=7)
    fig.arrow([(cx, conv_y + 40), (rx, conv_y + 40), (rx, fy - 15)],
              width=1.6, head=7)
    fig.box(lx, fy, 100, 30, "filter  f", GREEN_BG, GREEN, size=13)
    fig.box(rx, fy, 100, 30, "gate  g", GREEN_BG, GREEN, size=13)
    ay = fy + 52
    fig.arrow([(lx, fy + 15), (lx, ay - 15)], width=1.6, head=7)
    fig.arrow([(rx, fy + 15), (rx, ay - 15)], width=1.6, head=7)
    fig.box(lx, ay, 100, 30, "tanh", GREEN_BG, GREEN, size=13)
    fig.box(rx, ay, 100, 30, "sigmoid", GREEN_BG, GREEN, size=13)
    my = ay + 50
    fig.op(cx, my, "mul", color=GREEN)
    fig.arrow([(lx, ay + 15), (lx, my), (cx - 11, my)], width=1.6, head=7)
    fig.arrow([(rx, ay + 15), (rx, my), (cx + 11, my)], width=1.6, head=7)
    fig.text(cx + 16, my + 18, "z = tanh(f) · sigmoid(g)", size=12,
             fill=GREEN, anchor="lm")

    # 1x1 convs: residual (left) and skip (right)
    by = my + 34
    cy1 = by + 40
    fig.line([(cx, my + 11), (cx, by)], INK, 1.6)
    fig.circle(cx, by, 3, fill=INK)
    fig.arrow([(cx, by), (lx, by), (lx, cy1 - 15)], width=1.6, head=7)
    fig.arrow([(cx, by), (rx, by), (rx, cy1 - 15)], width=1.6, head=7)
    fig.box(lx, cy1, 120, 30, "1x1 conv", ORANGE_BG, ORANGE, size=13)
    fig.box(rx, cy1, 120, 30, "1x1 conv", ORANGE_BG, ORANGE, size=13)
    fig.text(lx, cy1 + 26, "residual", size=11, fill=MUTED)
    fig.text(rx, cy1 + 26, "skip", size=11, fill=MUTED)

    # residual connection: block input added to the output
    ad_y = cy1 + 62
    bx = x0 + 28
    fig.op(lx, ad_y, "add", color=BLUE)
    fig.arrow([(lx, cy1 + 15), (lx, ad_y - 11)], width=1.6, head=7)
    fig.arrow([(cx, split_y), (bx, split_y), (bx, ad_y), (lx - 11, ad_y)],
              fill=BLUE, width=1.8, head=8)
    fig.text(bx + 6, (split_y + ad_y) / 2 + 40, "residual", size=11,
             fill=BLUE, anchor="lm")
    fig.text(bx + 6, (split_y + ad_y) / 2 + 55, "connection", size=11,
             fill=BLUE, anchor="lm")
    fig.arrow([(lx, ad_y + 11), (lx, y1 + 36)], width=1.8, head=8)
    fig.text(lx + 10, y1 + 22, "h' = h + res  to next block (x N)",
             size=12, anchor="lm")

    skip_xy = (rx + 60, cy1)
    return skip_xy, y1


def draw_output_head(fig, cx, skip_xy):
    """Panel 4: skip sum -> ReLU -> 1x1 -> ReLU -> 1x1 -> softmax."""
    fig.panel_title(cx - 160, 68, 4, "Output head")
    sy = 125
    fig.op(cx, sy, "add", r=13, color=PURPLE)
    fig.text(cx + 22, sy - 2, "sum of skip outputs", size=12,
             anchor="lm", fill=PURPLE)
    fig.text(cx + 22, sy + 14, "of all N blocks", size=12,
             anchor="lm", fill=PURPLE)
    # skip from the detailed block
    sx, syk = skip_xy
    route_x = 815
    fig.arrow([(sx, syk), (route_x, syk), (route_x, sy), (cx - 13, sy)],
              fill=PURPLE, width=1.8, head=8)
    # skips of the other blocks
    for dx, dy in ((-62, -26), (-36, -32)):
        fig.arrow([(cx + dx, sy + dy), (cx - 8, sy - 9)], fill=PURPLE,
                  width=1.2, head=6, dashed=True)
    fig.text(cx - 68, sy - 28, "other blocks", size=11, fill=PURPLE,
             anchor="rm")

    steps = [("ReLU", GREEN_BG, GREEN), ("1x1 conv", ORANGE_BG, ORANGE),
             ("ReLU", GREEN_BG, GREEN),
             ("1x1 conv  (256 channels)", ORANGE_BG, ORANGE),
             ("softmax over 256 levels", PURPLE_BG, PURPLE)]
    y = sy + 13
    for label, bg, fg in steps:
        ny = y + 32
        fig.arrow([(cx, y), (cx, ny - 14)], width=1.8, head=8)
        fig.box(cx, ny, 200, 28, label, bg, fg, size=13)
        y = ny + 14
    ny = y + 36
    fig.arrow([(cx, y), (cx, ny - 17)], width=1.8, head=8)
    fig.rect(cx - 100, ny - 17, cx + 100, ny + 17, PURPLE, PURPLE, 1.8)
    fig.text(cx, ny, "p(x_{t} | x_{<t})", size=15, bold=True, fill=WHITE)
    fig.text(cx, ny + 32, "trained with cross-entropy vs. x_{t}",
             size=11, fill=MUTED)
    return ny + 40


def draw_dilation_inset(fig, x0, y0, x1, y1):
    """Panel 5: stack of dilated causal convs, receptive field of 16."""
    fig.rect(x0, y0, x1, y1, fill=(249, 250, 251), outline=LIGHT, width=1.2)
    fig.panel_title(x0 + 10, y0 + 20, 5, "Dilated causal convs")
    n = 16
    dil = [1, 2, 4, 8]
    lx = x0 + 58
    sp = (x1 - 18 - lx) / (n - 1)
    rows = len(dil) + 1
    top, bot = y0 + 60, y1 - 48
    ry = [bot - i * (bot - top) / (rows - 1) for i in range(rows)]
    labels = ["input"] + ["d = %d" % d for d in dil]
    # which nodes feed the last output
    active = [set() for _ in range(rows)]
    active[rows - 1] = {n - 1}
    for layer in range(rows - 1, 0, -1):
        d = dil[layer - 1]
        for j in active[layer]:
            active[layer - 1].update({j, j - d})
    # faint connections everywhere, strong ones into the output cone
    for layer in range(1, rows):
        d = dil[layer - 1]
        for j in range(n):
            for i in (j, j - d):
                if i < 0:
                    continue
                on = j in active[layer]
                if not on:
                    fig.line([(lx + i * sp, ry[layer - 1]),
                              (lx + j * sp, ry[layer])], (232, 234, 238), 1)
    for layer in range(1, rows):
        d = dil[layer - 1]
        for j in active[layer]:
            for i in (j, j - d):
                fig.line([(lx + i * sp, ry[layer - 1]),
                          (lx + j * sp, ry[layer])], BLUE, 1.6)
    for layer in range(rows):
        fig.text(x0 + 12, ry[layer], labels[layer], size=11, fill=MUTED,
                 anchor="lm")
        for j in range(n):
            on = j in active[layer]
            fig.circle(lx + j * sp, ry[layer], 4.2 if on else 3.4,
                       fill=BLUE if on else WHITE,
                       outline=BLUE if on else (160, 168, 180), width=1.2)
    fig.text(lx + (n - 1) * sp, ry[-1] - 14, "output t", size=10,
             fill=BLUE, anchor="rm")
    fig.text((x0 + x1) / 2, y1 - 28,
             "receptive field 1 + 1 + 2 + 4 + 8 = 16 = 2^{4} pixels:",
             size=12)
    fig.text((x0 + x1) / 2, y1 - 12,
             "grows exponentially with depth", size=12, fill=MUTED)


def draw_legend(fig, x0, y0):
    """Small key for the operator symbols and colours."""
    fig.text(x0, y0, "Key", size=13, bold=True, anchor="lm")
    y = y0 + 26
    fig.op(x0 + 10, y, "add", r=9, color=BLUE)
    fig.text(x0 + 28, y, "element-wise add", size=12, anchor="lm")
    y += 26
    fig.op(x0 + 10, y, "mul", r=9, color=GREEN)
    fig.text(x0 + 28, y, "element-wise product", size=12, anchor="lm")
    y += 26
    fig.rect(x0 + 1, y - 8, x0 + 19, y + 8, ORANGE_BG, ORANGE, 1.5, 3)
    fig.text(x0 + 28, y, "convolution", size=12, anchor="lm")
    y += 26
    fig.rect(x0 + 1, y - 8, x0 + 19, y + 8, GREEN_BG, GREEN, 1.5, 3)
    fig.text(x0 + 28, y, "non-linearity", size=12, anchor="lm")
    y += 34
    for ln in ["Sampling: draw x_{t} from p(x_{t} | x_{<t}),",
               "feed it back, repeat for t = 0 ... T-1."]:
        fig.text(x0, y, ln, size=12, anchor="lm", fill=MUTED)
        y += 17


def draw_figure(path):
    """Render the whole architecture figure to `path`."""
    fig = Figure()
    fig.text(WIDTH / 2, 26, "WaveNet for images: autoregressive model "
             "over raster-ordered pixels", size=20, bold=True)
    fig.line([(20, 46), (WIDTH - 20, 46)], LIGHT, 1)

    feed = draw_sequence_panel(fig)
    stem_cx = 575
    stem_bottom = draw_stem(fig, stem_cx, feed)
    skip_xy, _ = draw_residual_block(fig, stem_cx, stem_bottom)
    draw_output_head(fig, 1010, skip_xy)
    draw_dilation_inset(fig, 835, 462, 1185, 785)
    draw_legend(fig, 40, 560)
    fig.save(path)


if __name__ == "__main__":
    out_dir = os.path.dirname(os.path.abspath(__file__))
    draw_figure(os.path.join(out_dir, "network.png"))
