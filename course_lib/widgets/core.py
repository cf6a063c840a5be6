"""The explorer core: controls, a picture that follows them, a static PNG fallback (see the package docstring)."""

from __future__ import annotations

import base64
import contextlib
import io
from typing import Any, Callable, Mapping

from matplotlib.figure import Figure


try:  # the explorers still work (static pictures only) without ipywidgets
    import ipywidgets as _ipywidgets
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    _ipywidgets = None



WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# --------------------------------------------------------------------------- the generic core


class _StaticControl:
    """Stand-in for an ipywidgets control when ipywidgets is missing: it holds
    a ``.value`` (and whatever else it was given, e.g. ``options``) and calls
    its observers when the value changes, as a widget would."""

    def __init__(self, value=None, **kwargs):
        self.__dict__["_observers"] = []
        self.__dict__["value"] = value
        for name, v in kwargs.items():
            self.__dict__[name] = v

    def observe(self, handler, names="value"):
        self._observers.append(handler)

    def __setattr__(self, name, new):
        old = self.__dict__.get(name)
        self.__dict__[name] = new
        if name == "value" and new != old:
            for handler in list(self._observers):
                handler({"name": "value", "old": old, "new": new, "owner": self})


def _control(kind: str, **kwargs):
    """An ipywidgets control of class ``kind`` (e.g. "IntSlider"), or a
    :class:`_StaticControl` holding the same arguments when ipywidgets is missing."""
    if _ipywidgets is None:
        return _StaticControl(**kwargs)
    return getattr(_ipywidgets, kind)(**kwargs)


def _png_bytes(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class Explorer:
    """Controls -> a pure function -> a picture, displayable with or without widgets.

    controls: {name: control}; each control has a ``.value`` (ipywidgets
    sliders, dropdowns...). compute(**values) -> result (numbers; pure).
    draw(result, **values) -> a new matplotlib Figure (pure).
    links: {name: fn(change)} run when that control changes, before the
    update, to adjust dependent controls (all in one update).

    ``values`` is the dict of current control values; ``update()`` recomputes
    ``last_result`` (it runs by itself whenever a control's value changes);
    ``figure()`` draws the current state; ``png()`` renders it to PNG bytes.
    Displaying the explorer (``display(explorer)`` or as a cell's last
    expression) shows the live widget where a widget front end exists and the
    PNG elsewhere (see the module docstring). ``widget`` is the ipywidgets box
    (None without ipywidgets); ``output`` the Output area holding the picture.
    ``updates`` and ``renders`` count computations and drawn pictures;
    ``last_error`` holds the exception of the last failed update made by a
    control (shown in the output area instead of a picture), else None.
    """

    def __init__(self, controls: Mapping[str, Any], compute: Callable[..., Any],
                 draw: Callable[..., Figure], title: str = "", dpi: int = 80,
                 links: Mapping[str, Callable[[dict], None]] | None = None):
        if not controls:
            raise ValueError("an Explorer needs at least one control")
        self.controls = dict(controls)
        self.title = title
        self.dpi = dpi
        self._compute = compute
        self._draw = draw
        self.links = dict(links or {})
        unknown = set(self.links) - set(self.controls)
        if unknown:
            raise ValueError(f"links name controls that do not exist: {sorted(unknown)}")
        self._held = 0
        self._live = False  # becomes True once displayed: only then are pictures drawn on change
        self.last_result = None
        self.last_error: Exception | None = None
        self.last_png: bytes | None = None
        self._png_of_update = -1  # the update that last_png shows
        self.updates = 0
        self.renders = 0
        if _ipywidgets is not None:
            self.output = _ipywidgets.Output()
            header = [_ipywidgets.HTML(f"<b>{title}</b>")] if title else []
            self.widget = _ipywidgets.VBox(header + [_ipywidgets.HBox(list(self.controls.values()),
                                                                      layout=_ipywidgets.Layout(flex_flow="row wrap")),
                                                     self.output])
        else:
            self.output = None
            self.widget = None
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    # -- state

    @property
    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    @contextlib.contextmanager
    def hold(self):
        """Change several controls at once with a single update at the end."""
        self._held += 1
        try:
            yield self
        finally:
            self._held -= 1
        if not self._held:
            self._safe_update()

    def update(self):
        """Recompute ``last_result`` from the controls (and redraw if displayed) -> the result."""
        self.last_result = self._compute(**self.values)
        self.last_error = None
        self.updates += 1
        if self._live:
            self._refresh_output()
        return self.last_result

    def _on_change(self, change) -> None:
        if self._held:
            return
        name = next((n for n, c in self.controls.items() if c is change["owner"]), None)
        if name in self.links:
            # a dependent control (e.g. the query words of a new sentence) is
            # adjusted first; the hold makes it all one update
            try:
                with self.hold():
                    self.links[name](change)
            except Exception as err:
                self._show_error(err)
            return
        self._safe_update()

    def _safe_update(self) -> None:
        try:
            self.update()
        except Exception as err:  # a widget callback must not die silently in the kernel log
            self._show_error(err)

    def _show_error(self, err: Exception) -> None:
        self.last_error = err
        if self.output is not None:
            self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"text/plain": f"could not update: {type(err).__name__}: {err}"}},)

    # -- pictures

    def figure(self) -> Figure:
        """A new Figure of the current state (not registered with pyplot)."""
        return self._draw(self.last_result, **self.values)

    def png(self) -> bytes:
        """PNG bytes of the current state (also kept in ``last_png``; drawn
        again only after an update)."""
        if self.last_png is None or self._png_of_update != self.updates:
            self.last_png = _png_bytes(self.figure(), self.dpi)
            self._png_of_update = self.updates
            self.renders += 1
        return self.last_png

    def _refresh_output(self) -> None:
        data = base64.b64encode(self.png()).decode("ascii")
        if self.output is not None:
            self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"image/png": data, "text/plain": repr(self)}},)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"<{self.title or 'Explorer'}: {shown}>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        self._live = True
        self._refresh_output()  # the live widget and the static PNG show the same picture
        bundle = {"text/plain": repr(self), "image/png": base64.b64encode(self.last_png).decode("ascii")}
        if self.widget is not None:
            bundle[WIDGET_MIME] = self.widget._repr_mimebundle_()[WIDGET_MIME]
        if include is not None:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude is not None:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle


