"""Progress bars: tqdm when it is installed, else a plain line on stderr.

    for batch in progress(loader, desc="epoch 1"):
        ...
    with progress(total=nbytes, desc="cifar-10", unit="B", unit_scale=True) as bar:
        bar.update(len(chunk))
        bar.set_postfix(loss=0.25)

On a terminal the fallback rewrites one line in place; otherwise (a CI log,
a file) it prints a line every 10% of the total, so logs stay short.
"""
import sys
import time


def progress(iterable=None, total=None, desc="", disable=False, unit="it",
             unit_scale=False, file=None):
    """Wrap `iterable` (or count by hand with `.update(n)`) in a progress bar.

    Returns a bar of `tqdm.auto` when tqdm is importable (a widget in Jupyter,
    text in a terminal), else a `Progress`; both iterate
    over `iterable` and support `update`, `set_postfix`, `close` and `with`.
    `total` defaults to `len(iterable)`; `unit_scale=True` prints 1.5M for
    1500000; `file` defaults to sys.stderr.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return Progress(iterable, total, desc, disable, unit, unit_scale, file)
    return tqdm(iterable, total=total, desc=desc, disable=disable, unit=unit,
                unit_scale=unit_scale, file=file)


class Progress:
    """The fallback bar: `desc  37/100 [00:12<00:20, 3.1 it/s, loss=0.25]`."""

    TTY_INTERVAL = 0.1     # seconds between redraws on a terminal
    LOG_INTERVAL = 10.0    # seconds between log lines when the total is unknown

    def __init__(self, iterable=None, total=None, desc="", disable=False, unit="it",
                 unit_scale=False, file=None):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc = iterable, total, desc
        self.disable, self.unit, self.unit_scale = disable, unit, unit_scale
        self.file = file if file is not None else sys.stderr
        self.tty = bool(getattr(self.file, "isatty", lambda: False)())
        self.n = 0
        self.postfix = ""
        self.start = self._last_draw = time.monotonic()
        self._drawn_n = None   # the count shown by the last line written
        self._closed = False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1):
        """Advance the count by `n` and redraw when it is time to."""
        self.n += n
        if self.disable:
            return
        now = time.monotonic()
        if self.tty:
            due = now - self._last_draw >= self.TTY_INTERVAL
        elif self.total:
            # a line each time the count enters a new tenth of the total
            due = self._tenth(self.n) > self._tenth(self._drawn_n or 0)
        else:
            due = now - self._last_draw >= self.LOG_INTERVAL
        if due:
            self._draw(now)

    def set_postfix(self, **kwargs):
        """Show `key=value` pairs after the rate (floats with 4 significant digits)."""
        self.postfix = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in kwargs.items())
        if self.tty and not self.disable:
            self._draw(time.monotonic())

    def close(self):
        """Write the final state (once) and end the line."""
        if self._closed:
            return
        self._closed = True
        if self.disable:
            return
        if self._drawn_n != self.n or self.tty:
            self._draw(time.monotonic())
        if self.tty:
            self.file.write("\n")
            self.file.flush()

    def _tenth(self, n):
        return 10 * n // self.total

    def _draw(self, now):
        line = self.format(now - self.start)
        if self.tty:
            self.file.write("\r" + line + "\x1b[K")  # \x1b[K clears a longer old line
        else:
            self.file.write(line + "\n")
        self.file.flush()
        self._drawn_n, self._last_draw = self.n, now

    def format(self, elapsed):
        """The bar's text after `elapsed` seconds."""
        count = self._number(self.n)
        rate = self.n / elapsed if elapsed > 0 else None
        times = _clock(elapsed)
        if self.total is not None:
            count += "/" + self._number(self.total)
            if rate:
                times += "<" + _clock(max(self.total - self.n, 0) / rate)
        if not rate:
            speed = f"? {self.unit}/s"
        elif rate < 1:  # slow steps read better as seconds per step
            speed = f"{1 / rate:.1f} s/{self.unit}"
        else:
            speed = f"{self._number(rate)} {self.unit}/s"
        postfix = ", " + self.postfix if self.postfix else ""
        head = f"{self.desc}  " if self.desc else ""
        return f"{head}{count} [{times}, {speed}{postfix}]"

    def _number(self, x):
        if self.unit_scale:
            for prefix in ("", "k", "M", "G", "T"):
                if abs(x) < 999.5:
                    return f"{x:.3g}{prefix}"
                x /= 1000
            return f"{x:.3g}P"
        return f"{x:.1f}" if isinstance(x, float) else str(x)


def _clock(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
