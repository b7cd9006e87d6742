"""The writing rules of the report, checked on the built HTML: what a careful person would not write.

Each rule is one function over the sentences of the book (`book_sentences`): sentences over 45 words, nested
parentheses, words in capitals that are not acronyms, "(s)" plurals, numbers with more than 4 significant digits, and
a sentence said twice in the book. Code, mathematics and tables are not prose and are left out; the data notice is
repeated on every page on purpose and is left out of the duplicate rule only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MAX_WORDS = 45
MAX_SIGNIFICANT = 4
MIN_DUPLICATE_WORDS = 8  # shorter sentences ("Data: the synthetic stand-in.") may repeat as labels
ACRONYMS = frozenset({
    "AMD", "AMX", "AVX", "AVX-512", "BT", "CE", "CI", "CNN", "CPU", "CSV", "CUDA", "CVAE", "ELBO", "EPYC", "FID", "GFLOP", "GPU",
    "H100", "H200", "HTML", "ICLR", "ITU-R", "JSON", "KID", "KL", "L1", "MD5", "MMD", "MSE", "NVIDIA", "OCT",
    "OCTMNIST", "PCA", "PDF", "PSNR", "RGB", "SNE", "SSIM", "TSTR", "TRTR", "NCHW", "URL", "VAE", "II", "III", "IV", "A4", "AI",
})
BLOCKS = ("p", "li", "dt", "dd", "figcaption", "caption", "th", "h1", "h2", "h3")
NOT_PROSE = ("script, style, code, pre, .math, .MathJax, table, nav, .headerlink, .cell_input, .cell_output pre, "
             ".citation")  # the bibliography's entries are the cited works' own words
NOTICE = ".admonition"  # the data notice at the top of every page


HEADINGS = ("h1", "h2", "h3")


@dataclass(frozen=True)
class Sentence:
    page: str
    text: str
    notice: bool = False  # inside the data notice
    heading: bool = False  # a title, repeated by design in the page's title and the contents


def split_sentences(text: str) -> list[str]:
    """A paragraph's sentences: split after . ! ? before a capital, a digit or an opening quote."""
    text = " ".join(text.split())
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])", text) if s]


def page_sentences(html: str, page: str) -> list[Sentence]:
    """The prose sentences of one built page (its main article), each paragraph or list item once."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    main = soup.find("main") or soup
    for element in main.select(NOT_PROSE):
        element.decompose()
    out = []
    for block in main.find_all(BLOCKS):
        if block.find(BLOCKS):  # the inner block is read on its own
            continue
        notice = block.find_parent(class_="admonition") is not None
        out += [Sentence(page, s, notice, block.name in HEADINGS) for s in split_sentences(block.get_text(" "))]
    return out


def book_sentences(html_root: Path, pages: list[str]) -> list[Sentence]:
    """Every prose sentence of the book's pages (paths relative to the HTML root, without suffix)."""
    out = []
    for page in pages:
        out += page_sentences((html_root / f"{page}.html").read_text(), page)
    return out


def _words(text: str) -> list[str]:
    return [w for w in text.split() if re.search(r"\w", w)]


def too_long(sentence: Sentence) -> str | None:
    n = len(_words(sentence.text))
    return f"{n} words" if n > MAX_WORDS else None


def nested_parentheses(sentence: Sentence) -> str | None:
    depth = 0
    for char in sentence.text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth > 1:
            return "nested parentheses"
    return None


def capitals(sentence: Sentence) -> str | None:
    # a word in capitals that is not an acronym, nor a variable being set (PROFILE=quick)
    shouting = [w for w in re.findall(r"\b[A-Z][A-Z0-9-]*[A-Z0-9]\b(?!=)", sentence.text)
                if w not in ACRONYMS and not re.fullmatch(r"[A-Z]\d+|\d.*", w)]
    return f"capitals: {', '.join(shouting)}" if shouting else None


def plural_s(sentence: Sentence) -> str | None:
    return '"(s)" plural' if "(s)" in sentence.text else None


def significant_digits(sentence: Sentence) -> str | None:
    """Decimal numbers with more than MAX_SIGNIFICANT significant digits (versions such as 2.11.0 are not numbers)."""
    long = []
    for number in re.findall(r"(?<![\w.])\d[\d,]*\.\d+(?![\d.]*\d)", sentence.text):
        digits = re.sub(r"\D", "", number).lstrip("0")
        if len(digits) > MAX_SIGNIFICANT:
            long.append(number)
    return f"too many digits: {', '.join(long)}" if long else None


def backticks(sentence: Sentence) -> str | None:
    """A backtick in prose is Markdown that was never rendered (a command belongs in a code element)."""
    return "literal backtick" if "`" in sentence.text else None


# an engineering target belongs in the issue that set it, not in the report ("against a goal of 20x", "target 5")
INTERNAL_TARGET = re.compile(r"\b(against a goal|goal of \d|target \d|targets? (met|missed|are unmeasured))", re.I)


def internal_target(sentence: Sentence) -> str | None:
    return "internal target" if INTERNAL_TARGET.search(sentence.text) else None


RULES = (too_long, nested_parentheses, capitals, plural_s, significant_digits, backticks, internal_target)


def duplicates(sentences: list[Sentence]) -> list[str]:
    """Sentences of at least MIN_DUPLICATE_WORDS words that the book says more than once (the notice aside)."""
    where: dict[str, list[str]] = {}
    for s in sentences:
        if not (s.notice or s.heading) and len(_words(s.text)) >= MIN_DUPLICATE_WORDS:
            where.setdefault(s.text, []).append(s.page)
    return [f"said {len(pages)} times ({', '.join(pages)}): {text[:120]}" for text, pages in where.items()
            if len(pages) > 1]


def problems(sentences: list[Sentence]) -> list[str]:
    """Every breach of the rules, one line each: 'page: what: the sentence'."""
    out = []
    for s in sentences:
        for rule in RULES:
            if (found := rule(s)) is not None:
                out.append(f"{s.page}: {found}: {s.text[:160]}")
    return out + duplicates(sentences)
