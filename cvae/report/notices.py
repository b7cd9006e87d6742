"""The data notice every page shows first: what data built it, and with which parameters.

Three cases, each a titled admonition: "Synthetic data" (the stand-in), "Not the official MedMNIST files" (real
files whose MD5 differs from `medmnist.INFO`) and "Data" (the official files).
"""

from __future__ import annotations

from collections.abc import Sequence

from cvae.core.labels import DATASET_NAMES, MODALITY_NAMES


def _either(names: Sequence[str]) -> str:
    """'A, B or C'."""
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


def data_notice_parts(synthetic: bool, profile: str, config_hash: str, unofficial: Sequence[str] = (),
                      built_with: str = "") -> tuple[str, str, str]:
    """(admonition class, title, Markdown body) of the data notice; `unofficial` lists the dataset flags whose file
    MD5 is not the official one; `built_with` is the one-line parameter note (e.g. "profile=smoke, seed=0")."""
    if synthetic:
        kind, title = "warning", "Synthetic data"
        # short enough that a phone shows the intro's verdict line below it on the first screen
        body = (f"This page was built with the **synthetic stand-in** (profile `{profile}`, config `{config_hash}`): "
                "generated MedMNIST-format images, **not medical data**. Its numbers test the pipeline, not "
                f"{_either(MODALITY_NAMES)}. Real data: `make book PROFILE=quick`.")
    elif unofficial:
        names = ", ".join(DATASET_NAMES.get(flag, flag) for flag in unofficial)
        kind, title = "warning", "Not the official MedMNIST files"
        body = (f"The {names} file(s) this page was built from (profile `{profile}`, config `{config_hash}`) have an "
                "MD5 that differs from the official MedMNIST v2 release: a different release or a modified copy. "
                "Its numbers are not comparable with the original report's. The reproducibility chapter lists "
                "every MD5; delete the files to download the official ones.")
    else:
        kind, title = "note", "Data"
        body = (f"Built from the official MedMNIST v2 files (MD5 checked; profile `{profile}`, config "
                f"`{config_hash}`); every number on this page was computed by that run.")
    if built_with:
        body += f"\n\nBuilt with `{built_with}`."
    return kind, title, body


def data_notice_markdown(synthetic: bool, profile: str, config_hash: str, unofficial: Sequence[str] = (),
                         built_with: str = "") -> str:
    """MyST Markdown of the titled data admonition (see `data_notice_parts`)."""
    kind, title, body = data_notice_parts(synthetic, profile, config_hash, unofficial, built_with)
    return f"```{{admonition}} {title}\n:class: {kind}\n{body}\n```\n"


def data_notice_html(synthetic: bool, profile: str, config_hash: str, unofficial: Sequence[str] = (),
                     built_with: str = "") -> str:
    """The same admonition as HTML (myst-nb renders only text/plain, HTML and images across documents)."""
    import html
    import re

    kind, title, body = data_notice_parts(synthetic, profile, config_hash, unofficial, built_with)
    paragraphs = []
    for paragraph in body.split("\n\n"):
        text = html.escape(paragraph)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
        paragraphs.append(f"<p>{text}</p>")
    return (f'<div class="admonition {kind}"><p class="admonition-title">{html.escape(title)}</p>'
            + "".join(paragraphs) + "</div>")


PRINT_LINE_KEY = "cvae_print_line"  # output metadata: the notice as one line, which the PDF prints after its first page


def data_notice_line(synthetic: bool, profile: str, config_hash: str, unofficial: Sequence[str] = (),
                     built_with: str = "") -> str | None:
    """The data notice as one line of Markdown for the printed chapters after the first, which carries it whole;
    None for files that are not the official ones: that warning is printed whole on every chapter."""
    if unofficial and not synthetic:
        return None
    data = "the synthetic stand-in, not medical data" if synthetic else "the official MedMNIST v2 files"
    return f"*This chapter was built on {data}: config {config_hash}, {built_with or f'profile={profile}'}.*"


def data_caption(synthetic: bool, unofficial: Sequence[str] = ()) -> str:
    """What a figure's images come from, for its caption: the stand-in is named as such in every caption."""
    if synthetic:
        return "the synthetic stand-in, not medical data"
    return "MedMNIST files that differ from the official release" if unofficial else "the official MedMNIST files"


def show_data_notice(synthetic: bool, profile: str, config_hash: str, unofficial: Sequence[str] = (),
                     built_with: str = ""):
    """Display the data admonition in the notebook, with its print line (`data_notice_line`) in the output's
    metadata; glue it as `data_notice` (HTML) and `data_notice_line` for the prose pages, and the caption words as
    `data_caption`."""
    from IPython.display import HTML, Markdown, display
    from myst_nb import glue as _glue

    line = data_notice_line(synthetic, profile, config_hash, unofficial, built_with)
    _glue("data_notice", HTML(data_notice_html(synthetic, profile, config_hash, unofficial)), display=False)
    if line:
        _glue("data_notice_line", Markdown(line), display=False)
    _glue("data_caption", data_caption(synthetic, unofficial), display=False)
    display(Markdown(data_notice_markdown(synthetic, profile, config_hash, unofficial, built_with)),
            metadata={PRINT_LINE_KEY: line} if line else None)


__all__ = ["PRINT_LINE_KEY", "data_notice_parts", "data_notice_line", "data_caption", "data_notice_markdown",
           "data_notice_html", "show_data_notice"]
