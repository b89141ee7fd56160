"""Tests of scaling_lib.training.textclean: plain text out of the corpora's source formats."""

import doctest
import struct
import zlib

import pytest

from scaling_lib.training import textclean as tc


def test_cleaning_helpers():
    assert tc.normalize_text("Cafe\u0301  \r\nx\n\n\n\ny ") == "Café\nx\n\ny"
    raw = "\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, it/pps did/dod n't/* ./.\n\n\n\tNext/ap one/cd ./.\n"
    assert tc.detag_brown(raw) == 'The jury said "no evidence", it didn\'t.\n\nNext one.'
    g = "Title page\n*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nTo be.\n*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nLicence text"
    assert tc.strip_gutenberg(g) == "To be."
    assert tc.strip_gutenberg("no header\nat all") == "no header\nat all"
    assert tc.split_fortunes("one\n%\ntwo\nlines\n%\n") == ["one", "two\nlines"]



def test_rst_to_text_drops_code_and_markup():
    rst = """.. SPDX-License-Identifier: GPL-2.0

=========
The Title
=========

Some **bold** prose with ``literal`` and :c:func:`kmalloc` and `a link <https://x.org>`_.

.. code-block:: c

    int main(void) { return 0; }

Example::

    $ make defconfig

.. note::

   Notes are prose and stay.

+-----+-----+
| a   | b   |
+-----+-----+

Final words.
"""
    text = tc.rst_to_text(rst)
    assert text == ("The Title\n\nSome bold prose with literal and kmalloc and a link.\n\nExample:\n\n"
                    "Notes are prose and stay.\n\nFinal words.")



def test_pod_to_text():
    pod = """
=encoding utf8

=head1 NAME

perlx - B<bold> words with C<< $a <=> $b >> and L<the docs|perlfunc/open> E<lt>hereE<gt>

=begin html

<p>dropped</p>

=end html

  my $verbatim = "dropped";

=over 4

=item * A list item with I<italic> text.

=back

=cut
"""
    assert tc.pod_to_text(pod) == ("NAME\n\nperlx - bold words with $a <=> $b and the docs <here>\n\n"
                                  "A list item with italic text.")



def test_html_to_text():
    page = """<html><head><title>Chapter 1</title></head><body>
<div class="navheader"><table><tr><td>Prev</td><td>Next</td></tr></table></div>
<h1>Getting Started</h1>
<p>Run the <code class="command">initdb</code> program
   once, &amp; then start the server.</p>
<pre class="programlisting">SELECT * FROM t;</pre>
<table><tr><td>a</td></tr></table>
<div class="navfooter">Home</div>
</body></html>"""
    assert tc.html_to_text(page) == "Getting Started\n\nRun the initdb program once, & then start the server."



def test_ztext_and_osis_chapters():
    osis = ('<div canonical="true" osisID="Gen" sID="g1" type="book"/> <title type="main">Genesis</title>'
            '<chapter n="1" osisID="Gen.1" sID="Gen.1"/> In the <w lemma="strong:H7225">beginning</w> God created.'
            '<note placement="foot">a footnote</note> <div sID="g2" type="x-p"/>And there was light.'
            '<chapter eID="Gen.1"/><chapter n="2" osisID="Gen.2" sID="Gen.2"/>Thus the heavens.'
            '<chapter eID="Gen.2"/><div canonical="true" eID="g1" osisID="Gen" type="book"/>'
            '<div canonical="true" osisID="Exod" sID="g3" type="book"/><title>Exodus</title>'
            '<chapter sID="Exod.1"/>Now these are the names.<chapter eID="Exod.1"/> trailing words')
    raw = osis.encode("utf-8")
    blocks = [raw[:150], raw[150:]]
    bzz, bzs = b"", b""
    for b in blocks:
        z = zlib.compress(b)
        bzs += struct.pack("<III", len(bzz), len(z), len(b))
        bzz += z
    text = tc.read_ztext({"mod/ot.bzs": bzs, "mod/ot.bzz": bzz})
    assert text == osis
    assert tc.osis_to_chapters(text) == [
        ("Gen.1", "Genesis\n\nIn the beginning God created.\n\nAnd there was light."),
        ("Gen.2", "Thus the heavens."),
        ("Exod.1", "Exodus\n\nNow these are the names.\n\ntrailing words"),
    ]
    bad = struct.pack("<III", 0, len(bzz), 999)
    with pytest.raises(ValueError, match="index says 999"):
        tc.read_ztext({"mod/nt.bzs": bad, "mod/nt.bzz": zlib.compress(b"x" * 10)})


def test_docstring_examples():
    result = doctest.testmod(tc)
    assert result.attempted > 0 and result.failed == 0
