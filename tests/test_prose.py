"""The writing rules (tests/prose_check.py) on fixed sentences, and on every page of the built smoke book."""

from __future__ import annotations

import re

import pytest
from book_build import LOG, smoke_book, toc_pages
from prose_check import (MAX_WORDS, Sentence, backticks, book_sentences, capitals, duplicates, internal_target,
                         nested_parentheses, page_sentences, plural_s, problems, significant_digits, split_sentences,
                         too_long)


def test_each_rule_catches_its_fault_and_passes_the_careful_version():
    assert too_long(Sentence("p", " ".join(["word"] * (MAX_WORDS + 1)))) == f"{MAX_WORDS + 1} words"
    assert too_long(Sentence("p", " ".join(["word"] * MAX_WORDS) + " – .")) is None  # a dash is no word
    assert nested_parentheses(Sentence("p", "A figure (its Figures 4 and 5 (the intro maps them)) here.")) == \
        "nested parentheses"
    assert nested_parentheses(Sentence("p", "A figure (Figure 4) and a table (Table 1).")) is None
    assert capitals(Sentence("p", "The claim is NOT TESTABLE here.")) == "capitals: NOT, TESTABLE"
    assert capitals(Sentence("p", "SSIM and FID on OCTMNIST, on an NVIDIA H200, with make book PROFILE=quick.")) is None
    assert plural_s(Sentence("p", "2 seed(s) were trained.")) == '"(s)" plural'
    assert backticks(Sentence("p", "Then `make bench` measures it.")) == "literal backtick"
    assert backticks(Sentence("p", "Then make bench measures it.")) is None
    assert significant_digits(Sentence("p", "FID 194.0309 and PSNR 25.5235 dB.")) == \
        "too many digits: 194.0309, 25.5235"
    assert significant_digits(Sentence("p", "FID 194.0, PSNR 25.52 dB, 1,155,993 parameters, torch 2.11.0.")) is None
    assert internal_target(Sentence("p", "It ran 19.3x as fast, against a goal of 20x.")) == "internal target"
    assert internal_target(Sentence("p", "Throughput 140,561 samples/s (target 5, missed).")) == "internal target"
    assert internal_target(Sentence("p", "It ran 19.3 times as fast as the conventional pipeline.")) is None


def test_sentences_split_after_a_full_stop_and_a_sentence_said_twice_is_named():
    assert split_sentences("It ran. 3 seeds. The end (see 2.5). “Quoted” too.") == [
        "It ran.", "3 seeds.", "The end (see 2.5).", "“Quoted” too."]
    said = "The later chapters evaluate the checkpoint of epoch 3 with beta at its final value."
    sentences = [Sentence("a", said), Sentence("b", said), Sentence("c", said, notice=True),
                 Sentence("d", "Short label repeated."), Sentence("e", "Short label repeated.")]
    assert duplicates(sentences) == [f"said 2 times (a, b): {said[:120]}"]


def test_code_mathematics_tables_and_the_notice_are_not_prose():
    html = """<main><div class="admonition"><p>This page was built with the synthetic stand-in, not with medical
    images at all.</p></div><p>Run <code>make book PROFILE=SMOKE</code> now. The weight <span class="math">\\(\\beta
    (t) (x)\\)</span> rises.</p><table><tr><td>194.0309</td></tr></table><ul><li><p>One item.</p></li></ul></main>"""
    sentences = page_sentences(html, "x")
    assert [s.text for s in sentences] == [
        "This page was built with the synthetic stand-in, not with medical images at all.", "Run now.",
        "The weight rises.", "One item."]
    assert sentences[0].notice and not sentences[1].notice
    assert problems(sentences) == []


@pytest.mark.slow
def test_the_built_book_reads_as_written_by_a_careful_person():
    html, _ = smoke_book()
    sentences = book_sentences(html, toc_pages())
    assert len(sentences) > 300  # the whole book was read, not an empty page
    found = problems(sentences)
    LOG.append(f"[prose] {len(sentences)} sentences checked, {len(found)} problems")
    assert found == [], "\n".join(found)


@pytest.mark.slow
def test_the_abstract_is_at_most_150_words():
    from bs4 import BeautifulSoup

    html, _ = smoke_book()
    soup = BeautifulSoup((html / "book" / "intro.html").read_text(), "html.parser")
    heading = soup.find(id="abstract")
    words = []
    for block in heading.find_all(["p", "li"]):
        words += re.findall(r"\S+", block.get_text(" "))
    assert 40 <= len(words) <= 150, len(words)
