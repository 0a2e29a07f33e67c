"""A figure's height follows its content: relviz.render.style.fit_to_content on figures built for the purpose."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from relviz.render.style import _vertical_slack, fit_to_content

WIDTH = 3.5


class Builder:
    """Builds one kind of figure and counts how often."""

    def __init__(self, stretching_rows: int, height: float = 9.0):
        self.rows = stretching_rows
        self.height = height
        self.built = 0

    def __call__(self) -> Figure:
        self.built += 1
        fig = Figure(figsize=(WIDTH, self.height), layout="constrained")
        grid = fig.add_gridspec(1 + self.rows, 1, height_ratios=[2] + [1] * self.rows)
        image = fig.add_subplot(grid[0])
        image.imshow(np.arange(64.0).reshape(8, 8))  # square: its height is fixed by the width
        image.set_title("a square image")
        for row in range(self.rows):  # bars stretch to whatever height is left to them
            ax = fig.add_subplot(grid[1 + row])
            ax.barh(np.arange(4), np.arange(1, 5))
            ax.set_title(f"bars {row}")
        return fig


def slack_and_overflow(fig: Figure) -> tuple[float, float]:
    fig.draw_without_rendering()
    tight = fig.get_tightbbox(fig._get_renderer())
    return _vertical_slack(fig), max(0.0, -tight.y0) + max(0.0, tight.y1 - fig.get_figheight())


def test_an_image_alone_gets_the_height_of_its_content_and_nothing_passes_the_edges():
    build = Builder(stretching_rows=0)
    fig = fit_to_content(build, max_height=9.5)
    slack, over = slack_and_overflow(fig)
    assert slack < 0.02 and over < 0.01
    assert WIDTH * 0.9 < fig.get_figheight() < WIDTH * 1.4  # a square image, its title and margins
    assert build.built == 2  # measured on one figure, checked on the one built at the fitted height


def test_rows_that_stretch_do_not_leave_white_bands_around_the_image():
    """Taking height off takes only part of it off the image: the fit steps past the slack it measured."""
    build = Builder(stretching_rows=2)
    fig = fit_to_content(build, max_height=9.5)
    slack, over = slack_and_overflow(fig)
    assert slack < 0.02 and over < 0.01
    assert build.built <= 5


def test_a_figure_that_fits_as_built_is_returned_without_a_second_build():
    first = Builder(stretching_rows=2)
    height = fit_to_content(first, max_height=9.5).get_figheight()
    again = Builder(stretching_rows=2, height=height)
    fig = fit_to_content(again, max_height=9.5)
    assert again.built == 1 and fig.get_figheight() == pytest.approx(height)


def test_the_height_stays_within_the_presets_bound():
    build = Builder(stretching_rows=0, height=20.0)
    fig = fit_to_content(build, max_height=2.0)
    assert fig.get_figheight() <= 2.0
